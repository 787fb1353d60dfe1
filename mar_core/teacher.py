"""The teacher of a distillation job: loaded frozen, its classes matched to the dataset's by
name, its input size checked against the student's, and the FPN levels the two share.

What the job should know is logged and sent as ``log`` events through the progress callback:
the class matching (a warning naming each dataset class the teacher lacks), a size warning
when the teacher's model card or builder gives another size than the student's (both see one
batch at the student's size: ``model.min_size`` / ``max_size`` are the shared size), and which
levels are distilled (paired by stride, ``distill.distiller.pair_levels``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from mar_core.distill.distiller import levels_message
from mar_core.errors import SpecError
from mar_core.models.class_map import ClassMapping, map_classes
from mar_core.models.loading import CARD_SOURCE, LoadedDetector, load_detector
from mar_core.paths import resolve_under
from mar_core.progress import ProgressCallback, ignore_progress
from mar_core.spec import JobSpec, ModelSpec, TeacherSpec

log = logging.getLogger(__name__)


@dataclass
class Teacher(LoadedDetector):
    """A loaded teacher (frozen, eval mode) and how it meets the dataset: ``class_map``."""

    class_map: ClassMapping | None = None


def load_teacher(
    spec: JobSpec,
    checkpoint_roots: list[Path] | None,
    student: nn.Module,
    class_names: list[str],
    progress: ProgressCallback = ignore_progress,
) -> Teacher:
    """Load the frozen teacher named by ``spec.teacher`` (its class count from its model card or
    its classifier's shape), match its classes to ``class_names`` and report what the job should
    know (class matching, input sizes, distilled levels against ``student``)."""
    assert spec.teacher is not None
    if spec.teacher.checkpoint is None:  # the service resolves job / upload before it runs a job
        source = spec.teacher.source
        raise SpecError(
            f"teacher.{source}: the id of {'an upload' if source == 'upload' else 'a job'} of the service, "
            "which resolves it when it runs the job; to run here, name the teacher by "
            "teacher.checkpoint (a path)",
            f"teacher.{source}",
        )
    path = resolve_under(spec.teacher.checkpoint, checkpoint_roots, "teacher.checkpoint")
    if not path.exists():
        raise SpecError(
            f"teacher.checkpoint: {spec.teacher.checkpoint!r} does not exist", "teacher.checkpoint"
        )
    loaded = load_detector(path, spec.teacher.model)
    loaded.model.eval().requires_grad_(False)
    teacher = Teacher(**vars(loaded), class_map=match_teacher_classes(loaded, spec.teacher, class_names))
    assert teacher.class_map is not None
    if teacher.class_map.missing:
        _event(progress, "warning", teacher.class_map.describe())
    elif not teacher.class_map.identity:
        _event(progress, "info", teacher.class_map.describe())
    warning = teacher_size_warning(teacher, spec.model)
    if warning:
        _event(progress, "warning", warning)
    _event(progress, "info", levels_message(student.mar_strides, teacher.model.mar_strides))
    return teacher


def _event(progress: ProgressCallback, level: str, message: str) -> None:
    log.log(logging.WARNING if level == "warning" else logging.INFO, "%s", message)
    progress({"type": "log", "level": level, "message": message})


def teacher_class_names(teacher: LoadedDetector, teacher_spec: TeacherSpec) -> list[str] | None:
    """The teacher's class names by label 1..K-1: ``teacher.class_names`` of the spec, else its
    model card's; ``None`` when neither names them."""
    given = teacher_spec.class_names if teacher_spec.class_names is not None else teacher.class_names
    if given is None:
        return None
    if len(given) == teacher.num_classes and given[0] == "__background__":
        given = given[1:]  # torchvision's category lists start with the background
    if len(given) != teacher.num_classes - 1:
        raise SpecError(
            f"teacher.class_names: {len(given)} names for a teacher of {teacher.num_classes - 1} classes "
            f'(its labels 1..{teacher.num_classes - 1} in order; "N/A" for an unused one)',
            "teacher.class_names",
        )
    return list(given)


def match_teacher_classes(
    teacher: LoadedDetector, teacher_spec: TeacherSpec, class_names: list[str]
) -> ClassMapping:
    """Map the teacher's classes to the dataset's by name. A teacher without names must have the
    dataset's class count (the same order is then assumed); one that shares no name is refused."""
    names_t = teacher_class_names(teacher, teacher_spec)
    if names_t is None:
        if teacher.num_classes != len(class_names) + 1:
            raise SpecError(
                f"teacher.class_names: the teacher has {teacher.num_classes - 1} classes, the dataset "
                f"{len(class_names)} ({', '.join(class_names)}); name the teacher's classes by label "
                "(teacher.class_names) to match them by name",
                "teacher.class_names",
            )
        names_t = class_names
    mapping = map_classes(class_names, names_t)
    if mapping.matched == 0:
        raise SpecError(
            f"teacher.checkpoint: the teacher's classes {names_t} share no name with the dataset's {class_names}",
            "teacher.checkpoint",
        )
    return mapping


def teacher_size_warning(teacher: LoadedDetector, student: ModelSpec) -> str | None:
    """A warning when the teacher's model card or torchvision builder gives another input size
    than the student's; ``None`` when they agree or nothing says (a bare file of this project's
    own detectors, whose ``teacher.model`` sizes are only defaults)."""
    if teacher.source != CARD_SOURCE and teacher.spec.torchvision is None:
        return None
    (t_min, t_max), (s_min, s_max) = teacher.spec.sizes, student.sizes
    if (sorted(set(t_min)), t_max) == (sorted(set(s_min)), s_max):
        return None
    origin = (
        "its model card"
        if teacher.source == CARD_SOURCE
        else f"teacher.model {teacher.spec.torchvision}: the builder's default unless set there"
    )
    return (
        f"the teacher was trained at min_size {'/'.join(map(str, t_min))}, max_size {t_max} ({origin}); "
        f"the student trains at min_size {'/'.join(map(str, s_min))}, max_size {s_max}. Both see one "
        "batch at the student's size: model.min_size / model.max_size are the shared size (set them "
        "to the teacher's to keep the scale it learnt)"
    )
