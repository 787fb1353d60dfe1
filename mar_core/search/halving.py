"""Successive halving under a compute budget: which steps the trials stop at to be ranked.

Every candidate trains the job's own schedule (its LR curve, its warm-up), so a trial that wins
continues to the end from where it stopped: the search is not paid twice. ``n`` candidates ->
``ceil(n / eta)`` -> ... -> 1; rung ``i`` ends at ``f * eta**i`` of the run, with ``f`` the largest
the budget allows. In steps of one candidate, the job costs

    sum_i n_i (s_i - s_(i-1)) + (iterations - s_last)  =  iterations * (1 + f * A)

(``A`` from the counts), which must stay within ``(budget - EVAL_RESERVE) * iterations``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mar_core.errors import SpecError

__all__ = ["EVAL_RESERVE", "Rung", "halving_plan", "planned_steps"]

ETA = 2  # the share kept at each rung is 1 / ETA
# Of the budget, kept for what is not training: the selection evaluations, each trial's set-up.
EVAL_RESERVE = 0.1
# The last rung ends at most here (of the run): the winner still trains a share of it alone.
MAX_LAST_RUNG = 0.8


@dataclass(frozen=True)
class Rung:
    """Trials stop after ``step`` steps and are ranked; the best ``keep`` go on."""

    step: int
    keep: int

    def to_dict(self) -> dict[str, int]:
        return {"step": self.step, "keep": self.keep}


def _counts(n: int) -> list[int]:
    counts = [n]
    while counts[-1] > 1:
        counts.append(math.ceil(counts[-1] / ETA))
    return counts


def halving_plan(n: int, budget: float, iterations: int) -> list[Rung]:
    """The rungs for ``n`` candidates in a run of ``iterations`` steps; none for one candidate.
    ``SpecError`` (naming ``distill.budget`` or ``train.iterations``) when they cannot fit."""
    if n <= 1:
        return []
    counts = _counts(n)
    rungs = len(counts) - 1
    growth = sum(counts[i] * (ETA**i - (ETA ** (i - 1) if i else 0)) for i in range(rungs)) - ETA ** (
        rungs - 1
    )
    spare = budget - EVAL_RESERVE - 1.0
    if spare <= 0:
        raise SpecError(
            f"distill.budget: {budget} leaves nothing for the search (at least 1.2)", "distill.budget"
        )
    first = min(spare / growth, MAX_LAST_RUNG / ETA ** (rungs - 1))
    steps: list[int] = []
    for i in range(rungs):
        step = math.floor(first * ETA**i * iterations)
        steps.append(max(step, steps[-1] + 1 if steps else 1))
    plan = [Rung(s, counts[i + 1]) for i, s in enumerate(steps)]
    if steps[-1] >= iterations or planned_steps(n, plan, iterations) > budget * iterations:
        raise SpecError(
            f"train.iterations: {iterations} steps are too few to rank {n} candidates within a budget of "
            f"{budget}x the run; raise train.iterations or distill.budget, or name fewer distill.candidates",
            "train.iterations",
        )
    return plan


def planned_steps(n: int, rungs: list[Rung], iterations: int) -> int:
    """The steps the whole job trains, summed over candidates (each as one candidate's step)."""
    total, alive, previous = 0, n, 0
    for rung in rungs:
        total += alive * (rung.step - previous)
        alive, previous = rung.keep, rung.step
    return total + iterations - previous
