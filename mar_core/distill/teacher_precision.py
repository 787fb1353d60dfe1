"""The teacher's precision: the autocast dtypes, and whether a reduced one pays on this device.

``distill.teacher_precision`` "bf16" / "fp16" autocasts the teacher's forward. On a GPU both are
native and faster. On a CPU it depends on more than the instruction flags: this project's 2-core
AMD EPYC lists ``avx512_bf16`` and yet its bf16 teacher step took 5.89x the float32 one
(BENCHMARKS.md, "steps"). So a CPU job measures: the teacher's forward on one batch of the job's
size in float32 and in the reduced precision (best of a few, after a warm-up); it keeps the
reduced precision only when that is faster, else its teacher runs in float32 and the job says so
with both timings.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

# distill.teacher_precision -> the autocast dtype of the teacher's forward (None: plain float32)
TEACHER_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def decide(precision: str, fp32_s: float, reduced_s: float) -> tuple[str, str | None]:
    """Keep ``precision`` when its forward took less time than float32's, else float32 and why."""
    if reduced_s < fp32_s:
        return precision, None
    return "fp32", (
        f"distill.teacher_precision {precision}: on this CPU the teacher's forward took "
        f"{reduced_s * 1000:.0f} ms in {precision} against {fp32_s * 1000:.0f} ms in float32 "
        f"({reduced_s / fp32_s:.2f}x); it runs in float32"
    )


def _best_of(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: oneDNN picks its kernels on the first call
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def teacher_forward_seconds(
    teacher: nn.Module, precision: str, batch: torch.Tensor, repeats: int = 2
) -> float:
    """Best time of the teacher backbone's forward on ``batch`` (``B x 3 x H x W``) in ``precision``
    (channels_last for a reduced one, as the distiller runs it); the teacher's memory format is
    left as it was."""
    dtype = TEACHER_DTYPES[precision]
    if dtype is not None:
        teacher.to(memory_format=torch.channels_last)
        batch = batch.contiguous(memory_format=torch.channels_last)

    def run() -> object:
        with (
            torch.no_grad(),
            torch.autocast(batch.device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
        ):
            return teacher.backbone(batch)

    try:
        return _best_of(run, repeats)
    finally:
        if dtype is not None:
            teacher.to(memory_format=torch.contiguous_format)


def usable_precision(
    precision: str, teacher: nn.Module, device: torch.device, batch_size: int, size: int
) -> tuple[str, str | None]:
    """The precision the job's teacher runs in on ``device`` and, when it is not ``precision``,
    why (a GPU keeps it; a CPU measures, on a ``batch_size x 3 x size x size`` batch)."""
    if TEACHER_DTYPES[precision] is None or device.type != "cpu":
        return precision, None
    batch = torch.randn(batch_size, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    fp32_s = teacher_forward_seconds(teacher, "fp32", batch)
    return decide(precision, fp32_s, teacher_forward_seconds(teacher, precision, batch))
