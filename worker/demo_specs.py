"""The job specs of ``mar demo``: a teacher, a baseline student and a MAR student.

The default demo distils from the benchmark's published teacher (``benchmarks/teachers/``,
RetinaNet R50-FPN128 trained 3200 steps by ``mar bench quality``) on the same synthetic set, with
the students of the benchmark's short group (``bench_student_specs``): about 6 minutes of training
on an idle 2-core CPU, and the gain the benchmark measures. ``--train-teacher`` (and ``--quick``)
trains the teacher through the service too, with the smaller specs below: functions of
``(data_dir, iterations)`` so the sizes are easy to tune.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The synthetic set the demo trains on (``mar_core.data.synth.generate_synthetic`` arguments).
DATA = {"seed": 0, "num_train": 200, "num_val": 50, "image_size": 128, "num_classes": 4}
QUICK_DATA = {"seed": 0, "num_train": 16, "num_val": 8, "image_size": 64, "num_classes": 3}

# Measured on this 2-core CPU with nothing else running: 0.26 s a step for the teacher, 0.14 s
# for the baseline student, 0.22 s for the MAR student (batch 8, 128 px). Provisional: the lead
# calibrates them. A busy machine makes every step several times slower.
ITERATIONS = {"teacher": 900, "student": 800}
QUICK_ITERATIONS = {"teacher": 4, "student": 3}


def _model(backbone: str, fpn_channels: int, size: int) -> dict[str, Any]:
    return {"arch": "retinanet", "backbone": backbone, "fpn_channels": fpn_channels,
            "min_size": size, "max_size": size, "anchor_scale": 0.5}


def _train(iterations: int, eval_max_images: int | None = None) -> dict[str, Any]:
    return {
        "iterations": iterations, "batch_size": 8, "optimizer": "adamw", "lr": 1e-3, "schedule": "cosine",
        "warmup_iters": min(50, max(1, iterations // 5)), "checkpoint_every": max(1, iterations // 3),
        "log_every": max(1, min(10, iterations // 10)), "eval_max_images": eval_max_images, "amp": False,
    }  # fmt: skip


def teacher_spec(data_dir: Path | str, iterations: int, image_size: int = 128) -> dict[str, Any]:
    """RetinaNet ResNet-34, FPN 128: the teacher."""
    return {"kind": "train", "name": "demo-teacher-r34", "dataset": {"path": str(data_dir)},
            "model": _model("resnet34", 128, image_size), "train": _train(iterations), "seed": 0}


def student_spec(data_dir: Path | str, iterations: int, image_size: int = 128) -> dict[str, Any]:
    """RetinaNet ResNet-18, FPN 64, trained alone: the baseline."""
    return {"kind": "train", "name": "demo-student-r18-baseline", "dataset": {"path": str(data_dir)},
            "model": _model("resnet18", 64, image_size), "train": _train(iterations), "seed": 0}


def mar_student_spec(data_dir: Path | str, iterations: int, teacher_dir: Path | str,
                     image_size: int = 128) -> dict[str, Any]:
    """The same student distilled with MAR from the teacher job's output folder."""
    spec = student_spec(data_dir, iterations, image_size)
    spec.update(kind="distill", name="demo-student-r18-mar", teacher={"checkpoint": str(teacher_dir)},
                distill={"method": "mar"})
    return spec


BENCH_PRESET, BENCH_GROUP, BENCH_SEED = "cpu", "retina-synth-short", 0


def bench_setup():
    """``(synthetic-set parameters, published teacher folder, teacher's report)`` of the benchmark
    group the default demo reproduces; the folder is None when the teacher is not published."""
    from mar_core.bench.plan import teacher_run
    from mar_core.bench.presets import get_preset
    from mar_core.bench.teachers import DEFAULT_TEACHERS, is_published, published_dir, published_report

    preset = get_preset(BENCH_PRESET)
    group = preset.group(BENCH_GROUP)
    trun = teacher_run(preset, preset.teachers[group.teacher])
    data = dict(preset.datasets[group.data].synth)
    if not is_published(DEFAULT_TEACHERS, trun):
        return data, None, None
    return data, published_dir(DEFAULT_TEACHERS, trun), published_report(DEFAULT_TEACHERS, trun)


def bench_student_specs(data_dir: Path | str, teacher_dir: Path | str) -> dict[str, dict[str, Any]]:
    """The benchmark group's ``baseline`` and ``mar`` students (seed 0), on ``data_dir``, the MAR
    one distilled from ``teacher_dir``; device left to the worker."""
    from mar_core.bench.plan import student_run
    from mar_core.bench.presets import get_preset

    preset = get_preset(BENCH_PRESET)
    group = preset.group(BENCH_GROUP)
    out = {}
    for label in ("baseline", "mar"):
        spec = student_run(preset, group, label, BENCH_SEED).spec
        spec = {**spec, "name": f"demo-student-r18-{label}", "dataset": {**spec["dataset"], "path": str(data_dir)}}
        spec.pop("resources", None)
        if spec.get("teacher"):
            spec["teacher"] = {**spec["teacher"], "checkpoint": str(teacher_dir)}
        out[label] = spec
    return out
