"""Learning-rate factor per iteration: linear warm-up, then step, cosine or constant."""

from __future__ import annotations

import math
from collections.abc import Callable


def lr_factor_fn(
    max_iter: int,
    warmup_iters: int,
    schedule: str,
    steps: list[float],
    warmup_factor: float = 0.001,
    gamma: float = 0.1,
) -> Callable[[int], float]:
    """Return ``f(it) -> factor`` of the base LR; ``steps`` are fractions of ``max_iter``."""
    milestones = [int(round(f * max_iter)) for f in steps]
    warmup_iters = min(warmup_iters, max_iter)

    def factor(it: int) -> float:
        if schedule == "step":
            base = gamma ** sum(it >= m for m in milestones)
        elif schedule == "cosine":
            base = 0.5 * (1 + math.cos(math.pi * min(it, max_iter) / max(1, max_iter)))
        else:
            base = 1.0
        if it < warmup_iters:
            alpha = it / warmup_iters
            base *= warmup_factor * (1 - alpha) + alpha
        return base

    return factor
