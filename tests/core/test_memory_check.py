"""A batch the device cannot hold fails the job with a message naming train.batch_size, before
the first step (a dry step of one and two images measures it), and an out-of-memory step is
reported the same way; the dry steps leave the model and every RNG as they were."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from mar_core.data import load_dataset
from mar_core.engine import memory_check
from mar_core.engine.memory_check import check_batch_fits
from mar_core.engine.trainer import Trainer
from mar_core.errors import InsufficientMemoryError
from mar_core.models.registry import build_detector
from mar_core.run import run_job
from tests.conftest import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_batch_larger_than_the_free_memory_fails_before_the_first_step(tiny_synth, tmp_path, monkeypatch):
    monkeypatch.setattr(memory_check, "available_bytes", lambda device: 2**20)  # 1 MiB free
    spec = tiny_spec(tiny_synth, train={"iterations": 2, "batch_size": 4, "eval_max_images": 1})
    with pytest.raises(InsufficientMemoryError) as e:
        run_job(spec, tmp_path / "job")
    assert e.value.param == "train.batch_size" and "batch 4" in e.value.message
    metrics = tmp_path / "job" / "metrics.jsonl"
    assert not metrics.exists() or not any(
        "loss/total" in json.loads(x) for x in metrics.read_text().splitlines()
    )


def test_the_dry_steps_measure_and_leave_model_and_rng_as_they_were(tiny_synth):
    spec = tiny_spec(tiny_synth)
    ds = load_dataset(spec.dataset, "train")
    model = build_detector(spec.model, ds.num_classes)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(5)
    estimate = check_batch_fits(model, [ds[0], ds[1]], 8, torch.device("cpu"))
    after_draw = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after_draw, torch.rand(3))  # the RNG was put back
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert estimate is not None and estimate["per_image"] > 0
    assert estimate["needed"] == estimate["fixed"] + 8 * estimate["per_image"]
    assert 0 < estimate["needed"] < estimate["available"]


class _Exhausted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, images, targets):
        raise RuntimeError(
            "DefaultCPUAllocator: can't allocate memory: you tried to allocate 1073741824 bytes"
        )


def test_an_out_of_memory_step_is_a_job_error_naming_the_batch():
    model = _Exhausted()
    batches = iter([([torch.zeros(3, 8, 8)] * 3, [{}] * 3)])
    trainer = Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.1), lambda start: batches, 1, torch.device("cpu")
    )
    with pytest.raises(InsufficientMemoryError, match="training step 0 ran out of memory at batch 3") as e:
        trainer.train()
    assert e.value.param == "train.batch_size"
