"""The selection split: images held out of the training split to rank a search's trials, so
the user's validation split never takes part in choosing the distiller."""

from __future__ import annotations

import random

from mar_core.errors import SpecError

__all__ = ["split_for_selection"]


def split_for_selection(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """``(fit, select)``: sorted indices of a training split of ``n`` images; ``select`` holds
    ``round(fraction * n)`` of them (at least one, and at least one left to train on), drawn by a
    generator fixed by ``seed`` (the same split on every machine and after a resume)."""
    if n < 2:
        raise SpecError(
            f"dataset: a distiller search needs at least 2 training images, the split has {n}", "dataset"
        )
    k = min(n - 1, max(1, round(fraction * n)))
    order = random.Random(f"mar-search-selection-{seed}").sample(range(n), n)
    return sorted(order[k:]), sorted(order[:k])
