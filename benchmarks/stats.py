"""Small statistics for the report: mean, sample std, verdicts. Torch-free."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float | None
    std: float | None  # sample std (n - 1); None below 2 values

    @classmethod
    def of(cls, values: list[float]) -> Summary:
        if not values:
            return cls(0, None, None)
        return cls(
            len(values), statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None
        )

    def pct(self) -> str:
        """``mean ± std`` in AP points (x100), e.g. ``23.41 ± 0.52``; ``-`` when empty."""
        if self.mean is None:
            return "-"
        if self.std is None:
            return f"{self.mean * 100:.2f} (n=1)"
        return f"{self.mean * 100:.2f} ± {self.std * 100:.2f}"

    def signed(self) -> str:
        """A mean difference in AP points with its sign, ``± std`` from 2 values, e.g. ``+3.21 ± 0.52``."""
        return f"{self.mean * 100:+.2f}" + ("" if self.std is None else f" ± {self.std * 100:.2f}")


def seed_spread(method: Summary, baseline: Summary) -> float | None:
    """The seed spread of a comparison: the larger of the two sample stds; None below 2 seeds."""
    if method.std is None or baseline.std is None:
        return None
    return max(method.std, baseline.std)


def beats_by_two_spreads(method: Summary, baseline: Summary) -> tuple[bool | None, str]:
    """Whether ``method`` beats ``baseline`` by more than twice the seed spread (the larger of
    the two sample stds). None (cannot say) below 2 seeds of either."""
    spread = seed_spread(method, baseline)
    if spread is None:
        return None, (
            f"cannot say yet: needs at least 2 seeds of both (MAR {method.n}, baseline {baseline.n})"
            + (
                f"; single-seed gain {(method.mean - baseline.mean) * 100:+.2f} AP"
                if method.mean is not None and baseline.mean is not None
                else ""
            )
        )
    gain = method.mean - baseline.mean
    verdict = gain > 2 * spread
    return verdict, (
        f"{'yes' if verdict else 'no'}: gain {gain * 100:+.2f} AP, twice the seed spread "
        f"{2 * spread * 100:.2f} AP (spread = larger sample std of the two, {method.n} and "
        f"{baseline.n} seeds)"
    )


def same_seed_gains(method: dict[int, float], baseline: dict[int, float]) -> str | None:
    """The gain on each seed both have, as one line: how many are above zero, each gain, their
    mean +- std (AP values in [0, 1], reported x100). None when no seed is shared.

    A seed fixes the student's initial weights and the batch order, so the same seed of two
    students differs mainly by the method; this reads past a baseline whose seeds scatter widely.
    """
    seeds = sorted(set(method) & set(baseline))
    if not seeds:
        return None
    gains = [method[s] - baseline[s] for s in seeds]
    each = ", ".join(f"s{s} {g * 100:+.2f}" for s, g in zip(seeds, gains))
    return (
        f"above the baseline on {sum(g > 0 for g in gains)} of {len(seeds)} seeds ({each}; "
        f"mean {Summary.of(gains).signed()})"
    )


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rank correlation of paired values (ties take their average rank); None below
    3 pairs or when either side is constant."""
    if len(xs) != len(ys) or len(xs) < 3:
        return None

    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx, vy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return None if vx == 0 or vy == 0 else cov / (vx * vy) ** 0.5
