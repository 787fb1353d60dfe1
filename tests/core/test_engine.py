"""The training engine: exact resume, non-finite losses, outputs of a run, learning."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from mar_core.engine.trainer import Trainer
from mar_core.errors import JobCancelled, NonFiniteLossError, SpecError
from mar_core.models.checkpoint_io import safe_load
from mar_core.models.loading import load_detector
from mar_core.run import run_job
from tests.conftest import tiny_spec


def _weights(workdir):
    return safe_load(workdir / "model.pt")


def test_stopped_and_resumed_run_ends_with_identical_weights(tiny_synth, tmp_path):
    spec = tiny_spec(
        tiny_synth, train={"iterations": 8, "hflip": 0.5, "eval_every": 0}, model={"min_size": [56, 64]}
    )  # multi-scale + flips: both draw from the RNG
    run_job(spec, tmp_path / "straight")

    calls = {"n": 0}

    def stop_after_three_steps() -> bool:
        calls["n"] += 1
        return calls["n"] >= 3

    with pytest.raises(JobCancelled):
        run_job(spec, tmp_path / "resumed", should_stop=stop_after_three_steps)
    ckpt = safe_load(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert ckpt["iteration"] == 3
    report = run_job(spec, tmp_path / "resumed")
    assert report["resumed_from_step"] == 3

    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    steps = [
        json.loads(line)["step"]
        for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
        if "loss/total" in line
    ]
    assert steps == list(range(1, 9)), "one metrics row per step after a resume"


def test_resume_refuses_a_checkpoint_of_another_spec(tiny_synth, tmp_path):
    run_job(tiny_spec(tiny_synth, train={"iterations": 2}), tmp_path / "w")
    with pytest.raises(SpecError, match="different spec"):
        run_job(tiny_spec(tiny_synth, train={"iterations": 3}), tmp_path / "w")


class _NaNModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, images, targets):
        return {"classification": self.w.sum(), "kd/relation": self.w.sum() * float("nan")}


def test_non_finite_loss_raises_naming_the_term():
    model = _NaNModel()

    def batches(start):
        return iter([([torch.zeros(3, 4, 4)], [{"boxes": torch.zeros(0, 4)}])] * 3)

    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), batches, 3, torch.device("cpu"))
    with pytest.raises(NonFiniteLossError, match="loss/kd/relation") as err:
        trainer.train()
    assert err.value.to_dict()["code"] == "non_finite_loss"
    assert model.w.item() == 1.0  # the bad step did not update the weights


def test_run_outputs_load_into_the_torchvision_constructor(tiny_synth, tmp_path):
    report = run_job(tiny_spec(tiny_synth, train={"iterations": 2}), tmp_path / "run")
    for name in ("metrics.jsonl", "report.json", "model.pt", "model.json", "checkpoints/last.pt"):
        assert (tmp_path / "run" / name).exists(), name
    loaded = load_detector(tmp_path / "run")
    assert type(loaded.model).__name__ == "RetinaNet"
    assert set(report["eval"]) >= {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    assert any(k.startswith("AP/") for k in report["eval"])


@pytest.mark.slow
def test_training_loss_goes_down(tiny_synth, tmp_path):
    spec = tiny_spec(tiny_synth, train={"iterations": 40, "lr": 0.01, "warmup_iters": 5, "hflip": 0.0})
    run_job(spec, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss/total"] for r in rows if "loss/total" in r]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.7 * first, (first, last)


BCCD = (
    __import__("pathlib").Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "BCCD" / "BCCD"
)


@pytest.mark.skipif(not BCCD.exists(), reason="the BCCD dataset lies beside the repo in ../shared")
def test_training_on_bccd_warns_about_its_degenerate_boxes(tmp_path, caplog):
    spec = tiny_spec(
        BCCD,
        dataset={"format": "voc", "path": str(BCCD)},
        model={"min_size": 96, "max_size": 128},
        train={"iterations": 1, "batch_size": 2, "eval_max_images": 4},
    )
    with caplog.at_level("WARNING", logger="mar_core.data"):
        report = run_job(spec, tmp_path / "bccd")
    dropped = [r.getMessage() for r in caplog.records if "degenerate" in r.getMessage()]
    assert any("BloodImage_00343.jpg" in m for m in dropped) and any(
        "BloodImage_00338.jpg" in m for m in dropped
    )
    assert (
        report["dataset"]["train_validation"]["dropped"] + report["dataset"]["val_validation"]["dropped"] == 2
    )
    assert report["class_names"] == ["Platelets", "RBC", "WBC"]
