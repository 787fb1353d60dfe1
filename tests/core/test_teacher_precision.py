"""A reduced-precision teacher runs only where it is faster: a CPU job measures the teacher's
forward in float32 and in bf16/fp16 and keeps float32 (saying why) when the reduced one is not
faster; a GPU keeps what the spec asks."""

from __future__ import annotations

import pytest
import torch

from mar_core.distill import teacher_precision
from mar_core.distill.teacher_precision import decide, usable_precision
from mar_core.models.registry import build_detector
from mar_core.spec import ModelSpec

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


def test_a_cpu_measures_and_the_teacher_keeps_its_memory_format(teacher):
    used, why = usable_precision("bf16", teacher, CPU, 1, 64)
    assert (used, why is None) in (("bf16", True), ("fp32", False))  # which one is this CPU's
    conv = next(m for m in teacher.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous()  # channels_last only while it was timed
