"""Time and peak memory of the relation loss: Gram form against the naive ``N x N`` form.

Each case runs in a fresh ``spawn`` process so that its peak RSS belongs to that case alone. The
figure reported is the rise of the resident-set high-water mark over the resident set after
building the inputs and a small warm-up call: on Linux (glibc) freed heap is trimmed and the mark
reset there through ``/proc/self/clear_refs`` and read from ``VmHWM``; elsewhere ``ru_maxrss`` is
used, whose mark cannot be reset (the rise is then over the earlier peak and can read low).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import re
import resource
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

from mar_core.distill.relation import relation_loss, relation_loss_naive

__all__ = ["measure_case", "measure_in_subprocess", "relation_perf_table"]

_NAIVE_LIMIT_BYTES = 2 * 1024**3


def _reset_peak() -> None:
    try:  # hand freed heap back first, so that reusing it counts as a rise
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def _peak_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure_case(
    side: int,
    channels: int,
    form: str,
    backward: bool = True,
    batch: int = 1,
    threads: int | None = None,
    seed: int = 0,
    repeats: int = 3,
    time_budget_s: float = 10.0,
) -> dict[str, Any]:
    """Run one case in this process: ``form`` in {"gram", "naive"} on ``batch x channels x
    side x side`` student and teacher maps, ``repeats`` times (fewer once ``time_budget_s`` is
    spent); returns the fastest time (s), the peak RSS rise over all runs (MB) and the value."""

    if threads is not None:
        torch.set_num_threads(threads)
    fn = {"gram": relation_loss, "naive": relation_loss_naive}[form]
    warm = torch.randn(1, 4, 4, 4, requires_grad=True)
    fn([warm], [torch.randn(1, 4, 4, 4)]).backward()
    gen = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, channels, side, side, generator=gen, requires_grad=backward)
    teacher = torch.randn(batch, channels, side, side, generator=gen)
    _reset_peak()
    base = _peak_mb()
    times: list[float] = []
    while len(times) < max(1, repeats) and sum(times) < time_budget_s:
        student.grad = None
        start = time.perf_counter()
        loss = fn([student], [teacher])
        if backward:
            loss.backward()
        times.append(time.perf_counter() - start)
        value = float(loss.detach())
        del loss
    return {
        "form": form,
        "side": side,
        "N": side * side,
        "channels": channels,
        "batch": batch,
        "backward": backward,
        "time_s": min(times),
        "runs": len(times),
        "peak_rss_mb": _peak_mb() - base,
        "value": value,
    }


def measure_in_subprocess(**case: Any) -> dict[str, Any]:
    """``measure_case(**case)`` in a fresh spawned process."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(measure_case, **case).result()


def relation_perf_table(
    sizes: Sequence[int] = (16, 32, 64, 128),
    channels: int = 256,
    backward: bool = True,
    threads: int | None = None,
    naive_limit_bytes: int = _NAIVE_LIMIT_BYTES,
    repeats: int = 3,
) -> list[dict[str, Any]]:
    """One row per (size, form): the Gram form always, the naive form only where one ``N x N``
    float32 matrix stays under ``naive_limit_bytes`` (2 GiB); ``repeats`` runs per case. Rows: form,
    side, N, channels, batch, backward, time_s (fastest run), runs, peak_rss_mb, value."""
    rows = []
    for side in sizes:
        n = side * side
        forms = ["gram"] + (["naive"] if n * n * 4 < naive_limit_bytes else [])
        for form in forms:
            rows.append(
                measure_in_subprocess(
                    side=side,
                    channels=channels,
                    form=form,
                    backward=backward,
                    threads=threads,
                    repeats=repeats,
                )
            )
    return rows
