"""Reduced precision runs only where it is faster: a CPU job measures the teacher's forward (for
``distill.teacher_precision``) or the student's (for ``train.cpu_bf16``) in float32 and in the
reduced precision and keeps float32 (saying why) when the reduced one is not faster; a GPU keeps
what the spec asks."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mar_core.engine import precision as teacher_precision
from mar_core.engine.precision import decide, small_image_refusal, training_autocast, usable_precision
from mar_core.engine.trainer import Trainer
from mar_core.models.registry import build_detector
from mar_core.run import run_job
from mar_core.spec import ModelSpec
from tests.conftest import tiny_spec

CPU = torch.device("cpu")


def test_decide_keeps_a_faster_reduced_precision():
    assert decide("bf16", fp32_s=0.2, reduced_s=0.1) == ("bf16", None)


def test_decide_falls_back_to_float32_with_both_timings():
    used, why = decide("bf16", fp32_s=0.1, reduced_s=0.589)
    assert used == "fp32"
    assert "589 ms in bf16 against 100 ms in float32 (5.89x)" in why and "runs in float32" in why


@pytest.fixture(scope="module")
def teacher():
    return build_detector(
        ModelSpec(arch="retinanet", backbone="resnet18", fpn_channels=32, min_size=64, max_size=64), 3
    ).eval()


def test_fp32_and_gpus_measure_nothing(teacher, monkeypatch):
    monkeypatch.setattr(teacher_precision, "teacher_forward_seconds", lambda *a, **k: pytest.fail("measured"))
    assert usable_precision("fp32", teacher, CPU, 2, 64) == ("fp32", None)
    assert usable_precision("bf16", teacher, torch.device("cuda"), 2, 64) == ("bf16", None)


def test_a_cpu_measures_and_the_model_keeps_its_memory_format_mode_and_statistics(teacher):
    used, why = usable_precision("bf16", teacher, CPU, 1, 64)
    assert (used, why is None) in (("bf16", True), ("fp32", False))  # which one is this CPU's
    conv = next(m for m in teacher.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous()  # channels_last only while it was timed
    student = build_detector(
        ModelSpec(
            arch="retinanet", backbone="resnet18", fpn_channels=32, min_size=64, max_size=64, norm="batch"
        ),
        3,
    ).train()  # a student in training, with batch-norm statistics the timing must not move
    buffers = {k: v.clone() for k, v in student.state_dict().items()}
    usable_precision("bf16", student, CPU, 2, 64, channels_last=False)
    assert student.training
    assert all(torch.equal(v, student.state_dict()[k]) for k, v in buffers.items())


def test_training_autocast_per_device():
    assert training_autocast(True, False, torch.device("cuda")) is torch.float16
    assert training_autocast(False, True, torch.device("cuda")) is None  # cpu_bf16 is a CPU's
    assert training_autocast(True, False, CPU) is None  # amp is CUDA's
    assert training_autocast(True, True, CPU) is torch.bfloat16


def test_cpu_bf16_stays_out_of_the_spec_json_at_its_default(tiny_synth):
    assert "cpu_bf16" not in tiny_spec(tiny_synth).to_json_dict()["train"]
    on = tiny_spec(tiny_synth, train={"cpu_bf16": True}).to_json_dict()["train"]
    assert on["cpu_bf16"] is True


def test_bf16_training_refuses_images_whose_coarsest_maps_are_one_pixel():
    assert "at 64 px the FPN's coarsest maps are 1 x 1" in small_image_refusal(64)
    assert small_image_refusal(65) is None and small_image_refusal(128) is None


@pytest.mark.parametrize(
    ("size", "faster", "trained_in"),
    [(96, True, torch.bfloat16), (96, False, torch.float32), (64, True, torch.float32)],
)
def test_a_cpu_bf16_job_trains_in_bf16_only_where_it_is_safe_and_faster(
    tiny_synth, tmp_path, monkeypatch, size, faster, trained_in
):
    seen: list[torch.dtype] = []
    real_step = Trainer._step

    def step(self, images, targets):  # the dtype the student's first convolution computes in
        conv = next(m for m in self.module.modules() if isinstance(m, torch.nn.Conv2d))
        hook = conv.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
        try:
            return real_step(self, images, targets)
        finally:
            hook.remove()

    monkeypatch.setattr(Trainer, "_step", step)
    timings = {"fp32": 0.2, "bf16": 0.1 if faster else 0.3}  # this CPU's own figures vary
    monkeypatch.setattr(
        teacher_precision, "teacher_forward_seconds", lambda model, precision, batch, **k: timings[precision]
    )
    events: list[dict] = []
    spec = tiny_spec(
        tiny_synth,
        model={"min_size": size, "max_size": size},
        train={"iterations": 2, "cpu_bf16": True, "eval_max_images": 1},
    )
    run_job(spec, tmp_path / "job", progress=events.append)
    report = json.loads((tmp_path / "job" / "report.json").read_text())
    warnings = [e["message"] for e in events if e.get("type") == "log" and e.get("level") == "warning"]
    assert seen == [trained_in] * 2
    assert report["train_autocast"] == ("bfloat16" if trained_in is torch.bfloat16 else None)
    said = [w for w in warnings if w.startswith("train.cpu_bf16")]
    if trained_in is torch.bfloat16:
        assert said == []
    elif size == 64:
        assert len(said) == 1 and "coarsest maps are 1 x 1" in said[0]
    else:
        assert len(said) == 1 and "the forward took 300 ms in bf16 against 200 ms in float32" in said[0]
    assert all(math.isfinite(v) for v in report["eval"].values() if isinstance(v, float))
