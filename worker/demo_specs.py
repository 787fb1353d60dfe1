"""The job specs of ``mar demo``: a teacher, a baseline student and a MAR student.

The default demo distils from the benchmark's published teacher (``benchmarks/teachers/``,
RetinaNet R50-FPN128 trained 3200 steps by ``mar bench quality``, read as data) on the same
synthetic set, with the students of the benchmark's short group (``published_student_specs``): about 6 minutes in all, the
two students side by side, on an idle 2-core CPU (README), and the gain the benchmark measures. ``--train-teacher`` (and ``--quick``)
trains the teacher through the service too, with the smaller specs below: functions of
``(data_dir, iterations)`` so the sizes are easy to tune.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# The synthetic set the demo trains on (``mar_core.synth.generate_synthetic`` arguments).
DATA = {"seed": 0, "num_train": 200, "num_val": 50, "image_size": 128, "num_classes": 4}
QUICK_DATA = {"seed": 0, "num_train": 16, "num_val": 8, "image_size": 64, "num_classes": 3}

# Measured on this 2-core CPU with nothing else running: 0.26 s a step for the teacher, 0.14 s
# for the baseline student, 0.22 s for the MAR student (batch 8, 128 px). Provisional: the lead
# calibrates them. A busy machine makes every step several times slower.
ITERATIONS = {"teacher": 900, "student": 800}
QUICK_ITERATIONS = {"teacher": 4, "student": 3}


def _model(backbone: str, fpn_channels: int, size: int) -> dict[str, Any]:
    return {
        "arch": "retinanet",
        "backbone": backbone,
        "fpn_channels": fpn_channels,
        "min_size": size,
        "max_size": size,
        "anchor_scale": 0.5,
    }


def _train(iterations: int, eval_max_images: int | None = None) -> dict[str, Any]:
    return {
        "iterations": iterations, "batch_size": 8, "optimizer": "adamw", "lr": 1e-3, "schedule": "cosine",
        "warmup_iters": min(50, max(1, iterations // 5)), "checkpoint_every": max(1, iterations // 3),
        "log_every": max(1, min(10, iterations // 10)), "eval_max_images": eval_max_images, "amp": False,
    }  # fmt: skip


def teacher_spec(data_dir: Path | str, iterations: int, image_size: int = 128) -> dict[str, Any]:
    """RetinaNet ResNet-34, FPN 128: the teacher."""
    return {
        "kind": "train",
        "name": "demo-teacher-r34",
        "dataset": {"path": str(data_dir)},
        "model": _model("resnet34", 128, image_size),
        "train": _train(iterations),
        "seed": 0,
    }


def student_spec(data_dir: Path | str, iterations: int, image_size: int = 128) -> dict[str, Any]:
    """RetinaNet ResNet-18, FPN 64, trained alone: the baseline."""
    return {
        "kind": "train",
        "name": "demo-student-r18-baseline",
        "dataset": {"path": str(data_dir)},
        "model": _model("resnet18", 64, image_size),
        "train": _train(iterations),
        "seed": 0,
    }


def mar_student_spec(
    data_dir: Path | str, iterations: int, teacher_dir: Path | str, image_size: int = 128
) -> dict[str, Any]:
    """The same student distilled with MAR from the teacher job's output folder."""
    spec = student_spec(data_dir, iterations, image_size)
    spec.update(
        kind="distill",
        name="demo-student-r18-mar",
        teacher={"checkpoint": str(teacher_dir)},
        distill={"method": "mar"},
    )
    return spec


# The benchmark's published teacher (``mar bench quality --preset cpu``, group
# ``retina-synth-short``: RetinaNet R50-FPN128, 3200 steps), read as data: its ``model.json``,
# ``model.pt`` and ``report.json``. ``MAR_DEMO_TEACHER`` points at another published folder.
PUBLISHED_TEACHER = (
    Path(__file__).resolve().parents[1] / "benchmarks" / "teachers" / "cpu-retina-synth-a1b70fb8ffba"
)
# The synthetic set that teacher was trained on (``generate_synthetic`` arguments).
PUBLISHED_DATA = {"seed": 0, "num_train": 600, "num_val": 150, "image_size": 128}


def published_teacher() -> tuple[Path, dict[str, Any]] | None:
    """``(folder, its report.json)`` of the published teacher, or None when it is not there."""
    folder = Path(os.environ.get("MAR_DEMO_TEACHER") or PUBLISHED_TEACHER)
    if not (folder / "model.json").is_file() or not (folder / "model.pt").is_file():
        return None
    report = folder / "report.json"
    return folder, json.loads(report.read_text()) if report.is_file() else {}


def published_student_specs(data_dir: Path | str, teacher_dir: Path | str) -> dict[str, dict[str, Any]]:
    """The ``baseline_bf16`` and ``mar_bf16`` students (seed 0) of the benchmark group the published
    teacher belongs to (its ``baseline`` and ``mar`` with the training step in bf16,
    ``train.cpu_bf16``: ~1.6x faster a step on a CPU with bf16 instructions, float32 elsewhere),
    on ``data_dir``, the MAR one distilled from ``teacher_dir``; device left to the worker.
    ``tests/bench`` checks they equal that group's specs, so the demo shows the gain the benchmark
    measures. The MAR student is MAR's job default (``{"method": "mar"}``): what a user who leaves
    the weights unset gets, with the teacher cache on and the teacher in bf16 (runtime fields,
    ``RUNTIME_FIELDS``: the same losses up to rounding)."""
    base = {
        "kind": "train", "name": "demo-student-r18-baseline", "dataset": {"format": "coco", "path": str(data_dir)},
        "model": _model("resnet18", 64, 128),
        "train": {"iterations": 700, "batch_size": 8, "optimizer": "adamw", "lr": 1e-3, "schedule": "cosine",
                  "warmup_iters": 100, "checkpoint_every": 100, "log_every": 20, "cpu_bf16": True},
        "seed": 0,
    }  # fmt: skip
    mar = {
        **base,
        "kind": "distill",
        "name": "demo-student-r18-mar",
        "teacher": {"checkpoint": str(teacher_dir)},
        # the teacher's outputs kept per (image, flip): from the second sight of each the MAR step
        # costs ~1.04x a student step instead of 1.7x; the first sights in bf16 where that is faster
        # (runtime fields: what it learns is the same up to rounding)
        "distill": {"method": "mar", "teacher_cache": "auto", "teacher_precision": "bf16"},
    }
    return {"baseline": base, "mar": mar}
