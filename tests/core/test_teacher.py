"""The teacher meets the dataset: classes matched by name (COCO's 91 ids with "N/A" gaps, a
superset, a class the teacher lacks), the input-size warning, and a job that reports both."""

from __future__ import annotations

import pytest
import torch

from mar_core.errors import SpecError
from mar_core.models.checkpoint_io import write_model_output
from mar_core.models.class_map import map_classes
from mar_core.models.loading import CARD_SOURCE, FILE_SOURCE, LoadedDetector
from mar_core.models.registry import build_detector
from mar_core.run import run_job
from mar_core.spec import JobSpec, ModelSpec, TeacherSpec
from mar_core.teacher import match_teacher_classes, teacher_size_warning
from tests.conftest import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPES = ["circle", "square", "triangle", "cross", "ring", "diamond"]  # the tiny set's classes


def loaded(num_classes, class_names=None, spec=None, source=CARD_SOURCE) -> LoadedDetector:
    return LoadedDetector(None, spec or ModelSpec(), num_classes, class_names, source)


def test_coco_ids_with_gaps_map_by_name():
    coco = ["person", "bicycle", "N/A", "car", "N/A", "N/A", "Dog"]  # labels 1..7 of the teacher
    mapping = map_classes(["dog", "car", "person", "unicorn"], coco)
    assert mapping.teacher_label == (7, 4, 1, None)  # case and gaps do not matter
    assert mapping.missing == ("unicorn",) and mapping.unused == ("bicycle",) and not mapping.identity
    scores = torch.arange(8.0).repeat(2, 1)  # B x (1 + 7): background + teacher labels
    assert mapping.teacher_scores(scores, fill=-1.0).tolist() == [[0.0, 7.0, 4.0, 1.0, -1.0]] * 2
    assert "the teacher lacks unicorn" in mapping.describe()
    assert map_classes(["a", "b"], ["a", "b"]).identity


def test_teacher_class_names_from_the_spec_beat_the_card_and_skip_the_background():
    teacher = loaded(4, ["x", "y", "z"])
    spec = TeacherSpec(checkpoint="t", class_names=["__background__", "b", "N/A", "a"])
    assert match_teacher_classes(teacher, spec, ["a", "b"]).teacher_label == (3, 1)
    with pytest.raises(SpecError, match="2 names for a teacher of 3 classes") as err:
        match_teacher_classes(teacher, TeacherSpec(checkpoint="t", class_names=["a", "b"]), ["a"])
    assert err.value.param == "teacher.class_names"


def test_a_teacher_without_names_must_have_the_dataset_class_count():
    assert match_teacher_classes(loaded(3), TeacherSpec(checkpoint="t"), ["a", "b"]).identity
    with pytest.raises(SpecError, match="name the teacher's classes") as err:
        match_teacher_classes(loaded(91), TeacherSpec(checkpoint="t"), ["a", "b"])
    assert err.value.param == "teacher.class_names"


def test_size_warning_names_both_sizes_and_where_the_teachers_comes_from():
    student = ModelSpec(min_size=64, max_size=64)
    builder = ModelSpec(torchvision="fasterrcnn_resnet50_fpn_v2")
    warning = teacher_size_warning(loaded(3, spec=builder, source=FILE_SOURCE), student)
    assert "trained at min_size 800, max_size 1333 (teacher.model fasterrcnn_resnet50_fpn_v2" in warning
    assert "the student trains at min_size 64, max_size 64" in warning and "shared size" in warning
    card = ModelSpec(min_size=[96, 128], max_size=128)
    assert "min_size 96/128, max_size 128 (its model card)" in teacher_size_warning(
        loaded(3, spec=card), student
    )
    assert teacher_size_warning(loaded(3, spec=ModelSpec(min_size=64, max_size=64)), student) is None
    # a bare file of this project's own kind: its teacher.model sizes are only defaults
    assert teacher_size_warning(loaded(3, spec=ModelSpec(), source=FILE_SOURCE), student) is None


def test_a_job_maps_a_superset_teacher_by_name_and_reports(tiny_synth, tmp_path):
    """A teacher whose labels hold the dataset's classes out of order, with gaps and extras, and
    without "diamond": the job completes, warning about diamond and about the teacher's size."""
    teacher_names = ["N/A", "square", "zebra", "circle", "ring", "N/A", "cross", "triangle"]
    teacher_spec = ModelSpec(arch="retinanet", backbone="resnet18", fpn_channels=32, min_size=96, max_size=96)
    write_model_output(
        tmp_path / "teacher",
        build_detector(teacher_spec, len(teacher_names) + 1),
        teacher_spec,
        teacher_names,
    )
    spec = tiny_spec(tiny_synth, dataset={"max_images": 2}, train={"iterations": 2, "eval_max_images": 1})
    spec = JobSpec.model_validate(
        {
            **spec.to_json_dict(),
            "kind": "distill",
            "teacher": {"checkpoint": str(tmp_path / "teacher")},
            "distill": {"kd_warmup_iters": 0, "alpha": 1e-3, "beta": 1e-3, "gamma": 1.0},
        }
    )
    events: list[dict] = []
    run_job(spec, tmp_path / "job", progress=events.append)
    warnings = [e["message"] for e in events if e["type"] == "log" and e["level"] == "warning"]
    assert any("matched to the dataset's by name: 5 of 6; the teacher lacks diamond" in w for w in warnings)
    assert any("min_size 96, max_size 96 (its model card)" in w for w in warnings)
