"""Distillation jobs with torchvision's detectors: each builder's state_dict (as the builder
saves it, and in the zoo's layout without ``num_batches_tracked``) is the teacher of a 2-step
job that completes, and a student of each builder distils 2 steps into a ``model.pt`` that the
stock builder loads as it is. R50-FPN-256 models on 2 CPU cores: 64 px images, batch 1, 2 steps,
one eval image. One builder per family runs in `make test`, the rest (marked slow) in
`make test-all`."""

from __future__ import annotations

import json

import pytest
import torch
from torchvision.models import detection

from mar_core import names
from mar_core.run import run_job
from mar_core.spec import JobSpec
from tests.conftest import tiny_spec
from tests.core.torchvision_files import NUM_CLASSES

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"min_size": 64, "max_size": 64}
# Fixed numbers: the test is about the models, not about sizing the KD weights.
DISTILL = {"alpha": 1e-3, "beta": 1e-3, "gamma": 1.0, "kd_warmup_iters": 0}
# One builder per family in `make test` (the Faster R-CNN family also in test_the_readme_pair);
# the rest are marked slow and run in `make test-all`.
DEFAULT_RUN = {
    ("retinanet_resnet50_fpn", "torchvision"),
    ("fcos_resnet50_fpn", "torchvision"),
    ("fasterrcnn_mobilenet_v3_large_320_fpn", "zoo"),
    ("maskrcnn_resnet50_fpn", "zoo"),
}


def distill_job(data, teacher_path, teacher_model, student_model, **teacher) -> JobSpec:
    spec = tiny_spec(
        data,
        dataset={"max_images": 2},
        train={"iterations": 2, "batch_size": 1, "eval_max_images": 1, "amp": False},
    ).to_json_dict()
    spec.update(
        kind="distill",
        model=student_model,
        teacher={"checkpoint": str(teacher_path), "model": teacher_model, **teacher},
        distill=DISTILL,
    )
    return JobSpec.model_validate(spec)


def own_student(family: str) -> dict:
    """This project's small student of ``family``: R18, 32-wide GroupNorm FPN."""
    return {"arch": family, "backbone": "resnet18", "fpn_channels": 32, "anchor_scale": 0.5, **TINY}


def run(spec: JobSpec, workdir) -> tuple[dict, list[str]]:
    events: list[dict] = []
    report = run_job(spec, workdir, progress=events.append)
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert sum("loss/total" in r for r in rows) == 2
    assert all(r["loss/kd/fg"] > 0 and r["loss/kd/relation"] > 0 for r in rows if "loss/total" in r)
    return report, [e["message"] for e in events if e["type"] == "log"]


def loads_into_the_stock_builder(workdir, builder: str) -> None:
    card = json.loads((workdir / "model.json").read_text())
    assert card["torchvision"]["builder"] == builder and card["num_classes"] == NUM_CLASSES
    state = torch.load(workdir / "model.pt", weights_only=True)
    stock = getattr(detection, builder)(weights=None, weights_backbone=None, num_classes=card["num_classes"])
    stock.load_state_dict(state)  # strict: as it is


def _cases():
    for builder in names.TORCHVISION_BUILDERS:
        for layout in ("torchvision", "zoo"):
            marks = () if (builder, layout) in DEFAULT_RUN else (pytest.mark.slow,)
            yield pytest.param(builder, layout, id=f"{builder}-{layout}", marks=marks)


@pytest.mark.parametrize("builder, layout", list(_cases()))
def test_builder_as_teacher_and_student(builder, layout, builder_files, tiny_synth, tmp_path):
    """torchvision layout: teacher and student of ``builder``; zoo layout: the zoo file teaches
    this project's small student of the same family."""
    family = names.TORCHVISION_BUILDERS[builder].family
    student = {"torchvision": builder, **TINY} if layout == "torchvision" else own_student(family)
    spec = distill_job(tiny_synth, builder_files.path(builder, layout), {"torchvision": builder}, student)
    report, messages = run(spec, tmp_path / "job")
    assert report["params"]["teacher"] > 0
    assert any(m.startswith("distilled FPN levels (paired by stride)") for m in messages)
    assert any("the teacher was trained at min_size" in m for m in messages)  # builder: 800 vs 64
    if layout == "torchvision":
        loads_into_the_stock_builder(tmp_path / "job", builder)


def test_the_readme_pair(builder_files, tiny_synth, tmp_path):
    """fasterrcnn_resnet50_fpn_v2 (zoo layout) -> fasterrcnn_mobilenet_v3_large_fpn: the MobileNet
    FPN's levels (strides 32, 32, 64) take the teacher's P5 and pool; P2-P4 are left out."""
    teacher = builder_files.path("fasterrcnn_resnet50_fpn_v2", "zoo")
    student = {"torchvision": "fasterrcnn_mobilenet_v3_large_fpn", **TINY}
    spec = distill_job(tiny_synth, teacher, {"torchvision": "fasterrcnn_resnet50_fpn_v2"}, student)
    _, messages = run(spec, tmp_path / "job")
    levels = next(m for m in messages if m.startswith("distilled FPN levels"))
    assert "stride 32: student 0 <- teacher 3, stride 32: student 1 <- teacher 3" in levels
    assert "stride 64: student pool <- teacher pool" in levels
    assert "left out: teacher 0 (stride 4), teacher 1 (stride 8), teacher 2 (stride 16)" in levels
    loads_into_the_stock_builder(tmp_path / "job", "fasterrcnn_mobilenet_v3_large_fpn")
