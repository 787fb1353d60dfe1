"""The shared ``distill`` options of issue 36/37: KD switched off for the tail of the schedule
(``kd_stop_fraction``) and the student's neck and head started from the teacher's
(``init_from_teacher``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from mar_core.distill.distiller import build_distiller, kd_stop_step
from mar_core.distill.inherit import inherit_neck_and_head
from mar_core.errors import SpecError
from mar_core.methods import parse_distill
from mar_core.run import run_job
from tests.conftest import tiny_spec
from tests.core.test_distiller import pair


def test_kd_is_off_for_the_last_fraction_of_the_schedule():
    student, teacher = pair("retinanet")
    cfg = parse_distill({"method": "mar", "kd_warmup_iters": 10, "kd_stop_fraction": 0.25})
    distiller, hooks = build_distiller(student, teacher, cfg, "retinanet", "retinanet", 100)
    assert kd_stop_step(cfg, 100) == 75
    scales = {}
    for step in (0, 4, 9, 50, 74, 75, 99):
        hooks[0].before_step(SimpleNamespace(iter=step))
        scales[step] = distiller.kd_scale
    assert scales == {0: 0.1, 4: 0.5, 9: 1.0, 50: 1.0, 74: 1.0, 75: 0.0, 99: 0.0}
    assert kd_stop_step(parse_distill({"method": "mar"}), 100) is None


def test_new_shared_options_stay_out_of_the_json_at_their_defaults():
    plain = parse_distill({"method": "mar"}).model_dump()
    assert not {"kd_stop_fraction", "init_from_teacher", "teacher_precision", "auto_scale"} & set(plain)
    set_ = parse_distill(
        {"method": "crosskd", "kd_stop_fraction": 0.1, "init_from_teacher": True}
    ).model_dump()
    assert set_["kd_stop_fraction"] == 0.1 and set_["init_from_teacher"] is True
    with pytest.raises(ValueError, match="kd_stop_fraction"):
        parse_distill({"method": "mar", "kd_stop_fraction": 1.0})


@pytest.mark.parametrize("arch", ["retinanet", "fasterrcnn"])
def test_neck_and_head_are_copied_where_shapes_match_never_the_backbone_body(arch):
    student, teacher = pair(arch, s_ch=48, t_ch=48)  # same FPN width: neck and head fit
    body_before = {k: v.clone() for k, v in student.state_dict().items() if k.startswith("backbone.body.")}
    copied, left = inherit_neck_and_head(student, teacher, two_stage=arch == "fasterrcnn")
    t_state, s_state = teacher.state_dict(), student.state_dict()
    neck_head = [k for k in s_state if k.startswith(("backbone.fpn.", "head.", "rpn.", "roi_heads."))]
    assert copied == len(neck_head) > 0 and left == 0
    assert all(torch.equal(s_state[k], t_state[k]) for k in neck_head)
    assert all(torch.equal(s_state[k], v) for k, v in body_before.items())


def test_neck_and_head_of_another_width_are_left_as_they_are():
    student, teacher = pair("retinanet", s_ch=32, t_ch=48)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    copied, left = inherit_neck_and_head(student, teacher, two_stage=False)
    after = student.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    t_state = teacher.state_dict()
    same_shape = {
        k
        for k, v in before.items()
        if k.startswith(("backbone.fpn.", "head.")) and k in t_state and t_state[k].shape == v.shape
    }
    assert copied == len(same_shape) < left  # only biases of the class/box outputs fit here
    assert set(changed) <= same_shape


@pytest.fixture(scope="module")
def teacher_run(tiny_synth, tmp_path_factory):
    """A RetinaNet teacher of the tiny student's FPN width (32), one step."""
    out = tmp_path_factory.mktemp("inherit") / "teacher"
    run_job(tiny_spec(tiny_synth, model={"backbone": "resnet34"}, train={"iterations": 1}), out)
    return out


def test_a_job_starts_its_student_from_the_teachers_neck_and_head(tiny_synth, teacher_run, tmp_path):
    spec = tiny_spec(
        tiny_synth,
        kind="distill",
        teacher={"checkpoint": str(teacher_run)},
        distill={"method": "mar", "init_from_teacher": True},
        train={"iterations": 1},
    )
    events: list[dict] = []
    run_job(spec, tmp_path / "job", progress=events.append)
    logs = [e["message"] for e in events if e["type"] == "log" and "from the teacher" in e.get("message", "")]
    assert len(logs) == 1 and "tensors copied, 0 left" in logs[0] and " 0 tensors copied" not in logs[0]


def test_a_job_with_a_teacher_of_another_family_refuses_init_from_teacher(tiny_synth, teacher_run, tmp_path):
    spec = tiny_spec(
        tiny_synth,
        kind="distill",
        model={"arch": "fcos"},
        teacher={"checkpoint": str(teacher_run)},
        distill={"method": "mar", "init_from_teacher": True},
        train={"iterations": 1},
    )
    with pytest.raises(SpecError, match="needs a teacher of the student's family") as err:
        run_job(spec, tmp_path / "job")
    assert err.value.param == "distill.init_from_teacher"
