"""Reduced precision: the autocast dtypes, and whether a reduced one pays on this device.

Two users: ``distill.teacher_precision`` "bf16" / "fp16" autocasts the teacher's forward, and
``train.cpu_bf16`` the student's training step on a CPU (``train.amp``: float16 on CUDA). On a GPU
they are native and faster. On a CPU it depends on more than the instruction flags: this
project's 2-core AMD EPYC lists ``avx512_bf16``, and one benchmark run measured its bf16 teacher
step at 5.89x the float32 one (BENCHMARKS.md, "steps") where later runs found bf16 faster. So a
CPU job measures: the model's backbone forward on one batch of the job's size in float32 and in
the reduced precision (best of a few, after a warm-up); it keeps the reduced precision only when
that is faster, else float32, and the job says so with both timings.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

# distill.teacher_precision -> the autocast dtype of the teacher's forward (None: plain float32)
TEACHER_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_in(device_type: str, dtype: torch.dtype | None) -> torch.autocast:
    """``torch.autocast`` to ``dtype`` on ``device_type``; ``None``: off (float32)."""
    return torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None)


def training_autocast(amp: bool, cpu_bf16: bool, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a training step (None: float32): float16 with ``train.amp`` on CUDA,
    bfloat16 with ``train.cpu_bf16`` on a CPU."""
    if device.type == "cuda":
        return torch.float16 if amp else None
    return torch.bfloat16 if cpu_bf16 and device.type == "cpu" else None


# The batch a precision check times (or the job's batch when smaller): at 2 images this CPU's bf16
# forward of the demo's student measured 1.04x float32 in a job beside another (50 against 48 ms)
# and 0.79x alone, at 8 images 0.58x, close to its training step's 0.60-0.66x
PRECISION_CHECK_BATCH = 8

# The smallest image side bf16 training accepts on a CPU: at 64 px or less a RetinaNet / FCOS
# FPN's P6 map is 1 x 1, and the bf16 weight gradient of the stride-2 3 x 3 convolution that makes
# P7 from it comes back NaN in 4-35% of calls here (torch 2.14.1's oneDNN, AMD EPYC with
# avx512_bf16; a bare Conv2d reproduces it, 1 x 2 and larger inputs do not)
MIN_BF16_TRAINING_SIDE = 65


def small_image_refusal(min_side: int) -> str | None:
    """Why ``train.cpu_bf16`` cannot train at ``min_side`` px (None: it can)."""
    if min_side >= MIN_BF16_TRAINING_SIDE:
        return None
    return (
        f"train.cpu_bf16: at {min_side} px the FPN's coarsest maps are 1 x 1, where bf16 convolution "
        "gradients on a CPU come back NaN now and then (torch's oneDNN); it runs in float32"
    )


def decide(
    precision: str, fp32_s: float, reduced_s: float, field: str = "distill.teacher_precision"
) -> tuple[str, str | None]:
    """Keep ``precision`` when its forward took less time than float32's, else float32 and why
    (the message names the spec ``field`` that asked for it)."""
    if reduced_s < fp32_s:
        return precision, None
    return "fp32", (
        f"{field} {precision}: on this CPU the forward took "
        f"{reduced_s * 1000:.0f} ms in {precision} against {fp32_s * 1000:.0f} ms in float32 "
        f"({reduced_s / fp32_s:.2f}x); it runs in float32"
    )


def _best_of(run: Callable[[], object], repeats: int) -> float:
    """Least process CPU time of ``repeats`` calls after a warm-up: CPU time, not wall time, so
    that another process on a busy machine (two jobs side by side) does not decide the comparison
    (a bench job measured its bf16 forward slower under such load and trained in float32)."""
    run()  # warm-up: oneDNN picks its kernels on the first call
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best


def teacher_forward_seconds(
    teacher: nn.Module, precision: str, batch: torch.Tensor, repeats: int = 3, channels_last: bool = True
) -> float:
    """Best CPU time of a detector backbone's forward on ``batch`` (``B x 3 x H x W``) in
    ``precision`` (channels_last for a reduced one when ``channels_last``, as the distiller runs
    its teacher); the model's memory format is left as it was."""
    dtype = TEACHER_DTYPES[precision]
    channels_last = channels_last and dtype is not None
    was_training = teacher.training
    teacher.eval()  # no batch-norm statistics updated by the timing
    if channels_last:
        teacher.to(memory_format=torch.channels_last)
        batch = batch.contiguous(memory_format=torch.channels_last)

    def run() -> object:
        with (
            torch.no_grad(),
            autocast_in(batch.device.type, dtype),
        ):
            return teacher.backbone(batch)

    try:
        return _best_of(run, repeats)
    finally:
        teacher.train(was_training)
        if channels_last:
            teacher.to(memory_format=torch.contiguous_format)


def usable_precision(
    precision: str,
    model: nn.Module,
    device: torch.device,
    batch_size: int,
    size: int,
    field: str = "distill.teacher_precision",
    channels_last: bool = True,
) -> tuple[str, str | None]:
    """The precision ``model`` runs in on ``device`` and, when it is not ``precision``, why (a GPU
    keeps it; a CPU measures, on a ``batch_size x 3 x size x size`` batch; ``channels_last``: as
    the model will run in the reduced precision)."""
    if TEACHER_DTYPES[precision] is None or device.type != "cpu":
        return precision, None
    batch = torch.randn(batch_size, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    fp32_s = teacher_forward_seconds(model, "fp32", batch)
    reduced_s = teacher_forward_seconds(model, precision, batch, channels_last=channels_last)
    return decide(precision, fp32_s, reduced_s, field)
