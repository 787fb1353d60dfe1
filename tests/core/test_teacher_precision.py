"""``distill.teacher_precision``: the teacher's forward in bf16 (autocast, channels_last) gives the
KD losses float32 features close to the fp32 teacher's; fp32 stays the default and out of the
spec's JSON; a search passes the setting to its candidates."""

from __future__ import annotations

import copy

import pydantic
import pytest
import torch

from mar_core.distill.distiller import build_distiller
from mar_core.methods import parse_distill
from mar_core.search.candidates import Candidate
from mar_core.search.runner import candidate_spec
from tests.conftest import tiny_spec
from tests.core.test_distiller import IMAGES, TARGETS, pair

# bf16 keeps 8 significant bits (relative step 2^-8 = 0.4%); through the ~20 layers of an R34 FPN
# the rounding of each layer adds up like a random walk: a few percent of the features' norm.
FEATURE_REL_TOL = 0.05
LOSS_REL_TOL = 0.1  # the KD terms are squared differences of such features


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.parametrize("arch", ["retinanet", "fasterrcnn"])
def test_bf16_teacher_gives_float32_features_close_to_fp32(arch):
    student, teacher = pair(arch)
    fp32, _ = build_distiller(student, teacher, parse_distill({"method": "mar"}), arch, arch, 100)
    bf16, _ = build_distiller(
        copy.deepcopy(student),
        copy.deepcopy(teacher),
        parse_distill({"method": "mar", "teacher_precision": "bf16"}),
        arch,
        arch,
        100,
    )
    batch = student.transform(IMAGES)[0].tensors
    ref, got = fp32.teacher_features(batch), bf16.teacher_features(batch)
    for ref_list, got_list in zip(ref[:2], got[:2], strict=True):  # FPN levels, classification towers
        for r, g in zip(ref_list, got_list, strict=True):
            assert g.dtype == torch.float32 and g.shape == r.shape
            assert 0 < _rel(g, r) <= FEATURE_REL_TOL  # not the fp32 path, and close to it
    assert all(v.dtype == torch.float32 for v in got[2].values())


def test_a_bf16_teacher_step_trains_the_student_with_kd_losses_close_to_fp32():
    student, teacher = pair("retinanet")
    twin_student, twin_teacher = copy.deepcopy(student), copy.deepcopy(teacher)
    before = {k: v.clone() for k, v in twin_teacher.state_dict().items()}
    fp32, _ = build_distiller(
        student, teacher, parse_distill({"method": "mar"}), "retinanet", "retinanet", 100
    )
    bf16, _ = build_distiller(
        twin_student,
        twin_teacher,
        parse_distill({"method": "mar", "teacher_precision": "bf16"}),
        "retinanet",
        "retinanet",
        100,
    )
    ref = fp32.train()(IMAGES, TARGETS)
    got = bf16.train()(IMAGES, TARGETS)
    sum(got.values()).backward()
    for name in ("kd/fg", "kd/bg", "kd/relation"):
        assert torch.isfinite(got[name]) and got[name].dtype == torch.float32
        g_v, r_v = float(got[name].detach()), float(ref[name].detach())
        assert abs(g_v - r_v) <= LOSS_REL_TOL * abs(r_v) + 1e-6, name
    assert bf16.adapters[0].weight.grad is not None
    assert all(p.grad is None for p in twin_teacher.parameters())
    assert all(torch.equal(v, before[k]) for k, v in twin_teacher.state_dict().items())


def test_fp32_is_the_default_and_stays_out_of_the_json():
    assert parse_distill({"method": "mar"}).teacher_precision == "fp32"
    assert "teacher_precision" not in parse_distill({"method": "mar"}).model_dump()
    bf16 = parse_distill({"method": "cwd", "teacher_precision": "bf16"})
    assert bf16.model_dump()["teacher_precision"] == "bf16"
    with pytest.raises(pydantic.ValidationError, match="teacher_precision"):
        parse_distill({"method": "mar", "teacher_precision": "int8"})


def test_a_search_gives_its_candidates_its_teacher_precision(tiny_synth):
    spec = tiny_spec(tiny_synth, kind="distill", teacher={"checkpoint": "t"})
    spec = spec.model_copy(update={"distill": parse_distill({"method": "auto", "teacher_precision": "bf16"})})
    trial = candidate_spec(spec, Candidate("mar", {"method": "mar"}))
    assert trial.distill.method == "mar" and trial.distill.teacher_precision == "bf16"
    assert candidate_spec(spec, Candidate("none", None)).distill is None
