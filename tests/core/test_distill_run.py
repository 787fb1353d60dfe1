"""Distillation jobs end to end on a tiny synthetic set: each detector family completes, logs every
loss term by name, and exports a student that loads into the plain torchvision constructor."""

from __future__ import annotations

import json

import pytest
import torch

from mar_core.data import build_eval_loader, load_dataset
from mar_core.errors import SpecError
from mar_core.eval import coco_metrics, predict
from mar_core.models.loading import load_detector
from mar_core.run import run_job
from mar_core.spec import JobSpec
from tests.conftest import tiny_spec


def teacher_run(tiny_synth, tmp_path, arch):
    spec = tiny_spec(
        tiny_synth, model={"arch": arch, "backbone": "resnet34", "fpn_channels": 48}, train={"iterations": 2}
    )
    run_job(spec, tmp_path / f"teacher-{arch}")
    return tmp_path / f"teacher-{arch}"


def distill_spec(tiny_synth, teacher_dir, arch, evaluate_teacher=False, **distill) -> JobSpec:
    base = tiny_spec(tiny_synth, model={"arch": arch}, train={"iterations": 3, "log_every": 1}).to_json_dict()
    teacher = {"checkpoint": str(teacher_dir), **({"evaluate": True} if evaluate_teacher else {})}
    base.update(kind="distill", teacher=teacher, distill=distill)
    return JobSpec.model_validate(base)


@pytest.mark.parametrize("arch", ["retinanet", "fcos", "fasterrcnn"])
def test_mar_distillation_of_each_family(tiny_synth, tmp_path, arch):
    teacher = teacher_run(tiny_synth, tmp_path, arch)
    spec = distill_spec(tiny_synth, teacher, arch, evaluate_teacher=True, kd_warmup_iters=0)
    report = run_job(spec, tmp_path / "student")
    rows = [json.loads(line) for line in (tmp_path / "student" / "metrics.jsonl").read_text().splitlines()]
    loss_rows = [r for r in rows if "loss/total" in r]
    assert len(loss_rows) == 3
    for term in ("loss/kd/fg", "loss/kd/bg", "loss/kd/relation"):
        assert all(term in r and r[term] > 0 for r in loss_rows), term
    assert any(k.startswith("loss/det/") for k in loss_rows[0])
    assert report["params"]["teacher"] > report["params"]["model"]

    student = load_detector(tmp_path / "student")  # adapters are not part of the export
    state = torch.load(tmp_path / "student" / "model.pt", weights_only=True)
    assert not any(k.startswith(("adapters", "teacher")) for k in state)
    val = load_dataset(JobSpec.model_validate(report["spec"]).dataset, "val")
    metrics = coco_metrics(
        val.coco, predict(student.model, build_eval_loader(val, 4), torch.device("cpu")), val.class_names
    )
    assert metrics["AP"] == pytest.approx(report["eval"]["AP"], abs=1e-9)
    # teacher.evaluate: the teacher's AP on the same images, as its own run measured it
    teacher_ap = json.loads((teacher / "report.json").read_text())["eval"]["AP"]
    assert report["teacher_eval"]["AP"] == pytest.approx(teacher_ap, abs=1e-9)


def test_teacher_with_other_classes_is_refused(tiny_synth, tmp_path):
    spec = tiny_spec(tiny_synth, train={"iterations": 1})
    from mar_core.models.checkpoint_io import write_model_output
    from mar_core.models.registry import build_detector

    wrong = tmp_path / "wrong-teacher"
    write_model_output(wrong, build_detector(spec.model, 3), spec.model, ["a", "b"])
    with pytest.raises(SpecError, match="teacher's classes") as err:
        run_job(distill_spec(tiny_synth, wrong, "retinanet"), tmp_path / "s")
    assert err.value.param == "teacher.checkpoint"


def test_peer_method_job_logs_its_terms(tiny_synth, tmp_path):
    teacher = teacher_run(tiny_synth, tmp_path, "retinanet")
    run_job(distill_spec(tiny_synth, teacher, "retinanet", method="fgd", kd_warmup_iters=0), tmp_path / "fgd")
    row = json.loads((tmp_path / "fgd" / "metrics.jsonl").read_text().splitlines()[0])
    assert {"loss/kd/fgd/fg", "loss/kd/fgd/bg", "loss/kd/fgd/attention", "loss/kd/fgd/global"} <= set(row)
