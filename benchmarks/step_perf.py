"""Step time of student-only training, the teacher's forward and a MAR step, on one batch.

The three are timed round-robin in one process (student step, teacher forward, MAR step,
repeat), so that a change of machine load hits all three alike; the medians give the ratios.
Both wall time and the process's CPU time are recorded. On a shared machine wall time swings
with the other processes (and OpenMP threads that spin-wait for a descheduled peer inflate it
further); with one torch thread (``threads=1``) the CPU time counts the work of the step
itself, so its ratios are the ones that hold up under load.
``teacher forward`` is exactly what a MAR step runs of the teacher: its FPN and classification
tower on the student's padded batch (no detection head post-processing).

    overhead beyond the teacher = (t_mar_step - t_student_step - t_teacher_forward) / t_student_step
"""

from __future__ import annotations

import copy
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mar_core.data import generate_synthetic
from mar_core.data.loader import collate_detection
from mar_core.data.registry import load_dataset
from mar_core.distill.distiller import Distiller
from mar_core.distill.teacher_cache import TeacherCache
from mar_core.engine.precision import autocast_in
from mar_core.methods import parse_distill
from mar_core.models.registry import build_detector, count_parameters
from mar_core.spec import DatasetSpec, ModelSpec

log = logging.getLogger(__name__)


def synthetic_batch(image_size: int, batch_size: int, seed: int = 0):
    """``batch_size`` images (and targets) of a freshly generated synthetic set."""

    with tempfile.TemporaryDirectory(prefix="mar-perf-") as tmp:
        generate_synthetic(Path(tmp), seed=seed, num_train=batch_size, num_val=1, image_size=image_size)
        ds = load_dataset(DatasetSpec(path=tmp), "train")
        items = [ds[i] for i in range(batch_size)]
    images, targets = collate_detection(items)
    return images, targets


def train_step(model, optimizer, images, targets, autocast: torch.dtype | None = None) -> float:
    start = time.perf_counter()
    device = images[0].device.type
    with autocast_in(device, autocast):
        losses = model(images, targets)
    total = sum(losses.values())
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return time.perf_counter() - start


def measure_steps(
    student_model: dict[str, Any],
    teacher_model: dict[str, Any],
    *,
    image_size: int,
    batch_size: int,
    repeats: int = 10,
    warmup: int = 2,
    distill: dict[str, Any] | None = None,
    num_classes: int = 6,
    threads: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Median seconds (wall and CPU) of a student step, a teacher forward and a MAR step
    (``distill`` section, default MAR defaults) on the same batch; and their ratios.
    ``threads``: torch threads while measuring (restored afterwards); ``device``: where the
    models and the batch live (on CUDA each timing waits for the device to finish)."""

    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _measure(
            student_model,
            teacher_model,
            image_size,
            batch_size,
            repeats,
            warmup,
            distill,
            num_classes,
            torch.device(device),
        )
    finally:
        torch.set_num_threads(previous_threads)


def _ratios(med: dict[str, float]) -> dict[str, float]:
    return {
        "teacher_forward_over_student_step": round(med["teacher_forward"] / med["student_step"], 4),
        "mar_step_over_student_step": round(med["mar_step"] / med["student_step"], 4),
        "distillation_overhead": round(
            (med["mar_step"] - med["student_step"] - med["teacher_forward"]) / med["student_step"], 4
        ),
        **{
            f"{key}_over_student_step": round(med[key] / med["student_step"], 4)
            for key in (
                "mar_step_bf16_teacher",
                "mar_step_cached_teacher",
                "student_step_bf16",
                "mar_step_cached_teacher_bf16",
            )
            if key in med
        },
    }


def _timed(fn, device: torch.device) -> tuple[float, float]:
    """(wall, process CPU) seconds of ``fn()``, the device's queued work included."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - w0, time.process_time() - c0


def _measure(
    student_model, teacher_model, image_size, batch_size, repeats, warmup, distill, num_classes, device
):
    torch.manual_seed(0)
    images, targets = synthetic_batch(image_size, batch_size)
    images = [im.to(device) for im in images]
    targets = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets]
    s_spec, t_spec = ModelSpec(**student_model), ModelSpec(**teacher_model)
    student = build_detector(s_spec, num_classes + 1).train().to(device)
    teacher = build_detector(t_spec, num_classes + 1).eval().requires_grad_(False)
    section = distill or {"method": "mar"}

    def make_distiller(overrides: dict[str, Any], own_teacher: bool) -> Distiller:
        """A distiller of a twin of ``student`` (each optimiser sees the same kind of model)."""
        twin = build_detector(s_spec, num_classes + 1)
        twin.load_state_dict(student.state_dict())
        t = copy.deepcopy(teacher) if own_teacher else teacher  # bf16 turns its teacher channels_last
        cfg = parse_distill({**section, **overrides})
        return Distiller(twin, t, cfg, s_spec.family, t_spec.family).train().to(device)

    # The MAR step as configured; with the teacher in bf16 (issue 37); with every teacher output
    # read from the cache (a job's steps after each (image, flip) was seen once).
    distiller = make_distiller({}, own_teacher=False)
    bf16 = make_distiller({"teacher_precision": "bf16"}, own_teacher=True) if device.type == "cpu" else None
    cached = make_distiller({}, own_teacher=False)
    cached.teacher_cache = TeacherCache(1 << 40, 0, None)
    opt_s = torch.optim.SGD(student.parameters(), lr=1e-4, momentum=0.9)
    # train.cpu_bf16 (the demo's form): the student's step in bf16, alone and distilled from the cache
    bf16_student = student_twin = None
    if device.type == "cpu":
        student_twin = build_detector(s_spec, num_classes + 1).train()
        student_twin.load_state_dict(student.state_dict())
        opt_twin = torch.optim.SGD(student_twin.parameters(), lr=1e-4, momentum=0.9)
        bf16_student = make_distiller({}, own_teacher=False)
        bf16_student.teacher_cache = TeacherCache(1 << 40, 0, None)
    padded = student.transform(images, targets)[0].tensors

    last_losses: dict[str, float] = {}

    def kd_step(d: Distiller, autocast: torch.dtype | None = None) -> Callable[[], None]:
        opt = torch.optim.SGD([p for p in d.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)

        def step() -> None:
            with autocast_in(device.type, autocast):
                losses = d(images, targets)
            total = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            if d is distiller:
                last_losses.update({k: round(float(v.detach()), 5) for k, v in losses.items()})

        return step

    steps = {
        "student_step": lambda: train_step(student, opt_s, images, targets),
        "teacher_forward": lambda: distiller.teacher_features(padded),
        "mar_step": kd_step(distiller),
        **({"mar_step_bf16_teacher": kd_step(bf16)} if bf16 is not None else {}),
        "mar_step_cached_teacher": kd_step(cached),  # the warm-up steps fill the cache
        **(
            {
                "student_step_bf16": lambda: train_step(
                    student_twin, opt_twin, images, targets, torch.bfloat16
                ),
                "mar_step_cached_teacher_bf16": kd_step(bf16_student, torch.bfloat16),
            }
            if bf16_student is not None
            else {}
        ),
    }
    wall: dict[str, list[float]] = {k: [] for k in steps}
    cpu: dict[str, list[float]] = {k: [] for k in steps}
    for i in range(warmup + repeats):
        for name, fn in steps.items():
            w, c = _timed(fn, device)
            if i >= warmup:
                wall[name].append(w)
                cpu[name].append(c)
    for d in (distiller, bf16, cached, bf16_student):
        if d is not None:
            d.close()
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "student_model": student_model,
        "teacher_model": teacher_model,
        "image_size": image_size,
        "batch_size": batch_size,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "distill": distill or {"method": "mar"},
        "params": {"student": count_parameters(student), "teacher": count_parameters(teacher)},
        "median_s": {k: round(v, 5) for k, v in med.items()},
        "min_s": {k: round(min(v), 5) for k, v in wall.items()},
        "median_cpu_s": {k: round(v, 5) for k, v in med_cpu.items()},
        "ratios": _ratios(med),
        "ratios_cpu": _ratios(med_cpu),
        "last_mar_losses": last_losses,  # weighted KD terms at full scale (no warm-up here)
    }
