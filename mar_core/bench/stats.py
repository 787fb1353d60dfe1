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


def beats_by_two_spreads(method: Summary, baseline: Summary) -> tuple[bool | None, str]:
    """Whether ``method`` beats ``baseline`` by more than twice the seed spread (the larger of
    the two sample stds). None (cannot say) below 2 seeds of either."""
    if method.n < 2 or baseline.n < 2 or method.std is None or baseline.std is None:
        return None, (
            f"cannot say yet: needs at least 2 seeds of both (MAR {method.n}, baseline {baseline.n})"
            + (
                f"; single-seed gain {(method.mean - baseline.mean) * 100:+.2f} AP"
                if method.mean is not None and baseline.mean is not None
                else ""
            )
        )
    gain = method.mean - baseline.mean
    spread = max(method.std, baseline.std)
    verdict = gain > 2 * spread
    return verdict, (
        f"{'yes' if verdict else 'no'}: gain {gain * 100:+.2f} AP, twice the seed spread "
        f"{2 * spread * 100:.2f} AP (spread = larger sample std of the two, {method.n} and "
        f"{baseline.n} seeds)"
    )
