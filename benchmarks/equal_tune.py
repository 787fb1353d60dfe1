"""``mar bench equal-tune``: the same tuning budget for every KD method (issue 19).

MAR's defaults came from a 16-point grid while the peers were calibrated once; a comparison is
fair only when every method gets the same search. Here every method, MAR included, starts from
the calibration rule's point (each KD term at 0.5x the classification loss at the start, measured
by ``mar bench calibrate`` on the short group's seed 0) and gets the same three-point line search
over one factor on all its KD weights, on seed 0 of the short synthetic group: x1 and x3, then a
third step in the direction that helped (x9 when x3 beat x1, else x1/3). The same rule picks every
method's point: the highest seed-0 AP (a tie keeps the calibration point). The picked point then
runs on the other seeds (``--picks``), so each method is compared at its own best point.

Every point is a cached run of kind ``tune`` labelled ``<method> x<scale>``; a point equal to a
group student's spec (a peer at its calibrated weights, scale 1) is the same run, trained once.
The two peers with the best picks over every seed then run, at their picked weights, in the
groups beyond the short one (``benchmarks.roster.best_peers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from benchmarks.plan import TUNE_SEED, RunDef, student_run, tune_group
from benchmarks.presets import PEERS, Preset
from benchmarks.store import ResultStore
from benchmarks.tune_points import CALIBRATION_POINTS, DOWN_SCALE, FIRST_SCALES, UP_SCALE, point_label

GRID_POINTS = 3  # x1, x3 and the third point


def point_run(preset: Preset, method: str, scale: float, seed: int = TUNE_SEED) -> RunDef:
    """The grid point ``scale`` of ``method`` on ``seed``, its method and scale in ``extra``."""
    run = student_run(preset, tune_group(preset), point_label(method, scale), seed, kind="tune")
    return RunDef(**{**run.__dict__, "extra": {"method": method, "scale": scale}})


def third_scale(ap_by_scale: Mapping[float, float | None]) -> float | None:
    """The line search's third point: x9 when x3 beat x1, x1/3 when it did not (a tie goes down);
    None until both are in."""
    ap1, ap3 = ap_by_scale.get(1.0), ap_by_scale.get(3.0)
    if ap1 is None or ap3 is None:
        return None
    return UP_SCALE if ap3 > ap1 else DOWN_SCALE


def _seed0_ap(store: ResultStore, preset: Preset, method: str, scale: float) -> float | None:
    rec = store.get(point_run(preset, method, scale).key)
    return float(rec["eval"]["AP"]) if rec else None


def method_grid(store: ResultStore, preset: Preset, method: str) -> dict[float, float | None]:
    """``method``'s grid as far as it is decided now, scale -> seed-0 AP (None: not run yet):
    x1 and x3, and once both are in, the third point."""
    aps = {s: _seed0_ap(store, preset, method, s) for s in FIRST_SCALES}
    third = third_scale(aps)
    if third is not None:
        aps[third] = _seed0_ap(store, preset, method, third)
    return dict(sorted(aps.items()))


def plan_points(
    store: ResultStore, preset: Preset, methods: list[str] | None = None, seed: int = TUNE_SEED
) -> list[RunDef]:
    """One run per method and decided scale (x1, x3, and the third once x1 and x3 are in), on
    ``seed``, in the order of ``CALIBRATION_POINTS`` (or of ``methods``)."""
    return [
        point_run(preset, method, scale, seed)
        for method in (methods or CALIBRATION_POINTS)
        for scale in method_grid(store, preset, method)
    ]


@dataclass(frozen=True)
class Pick:
    """A method's grid on seed 0 and the point the rule picked (None until the grid is complete)."""

    method: str
    ap_by_scale: dict[float, float | None]
    scale: float | None

    @property
    def third(self) -> float | None:
        """The third point's scale once it is decided."""
        return next((s for s in self.ap_by_scale if s not in FIRST_SCALES), None)

    @property
    def at_edge(self) -> bool:
        """Picked at the third point: the best lies at the end of the search, maybe beyond it."""
        return self.scale is not None and self.scale == self.third


def picks(store: ResultStore, preset: Preset) -> list[Pick]:
    """Every method's seed-0 grid and its pick: the highest AP; a tie keeps scale 1."""
    out = []
    for method in CALIBRATION_POINTS:
        aps = method_grid(store, preset, method)
        chosen = None
        if len(aps) == GRID_POINTS and all(ap is not None for ap in aps.values()):
            chosen = max(aps, key=lambda s: (aps[s], s == 1.0))
        out.append(Pick(method, aps, chosen))
    return out


def peers_picked_heavier(found: list[Pick]) -> tuple[list[Pick], list[Pick]]:
    """(the peers with a pick, those of them picked above their calibration point): the quality
    groups run every peer at x1, which under-weights the second kind."""
    peers = [p for p in found if p.method in PEERS and p.scale is not None]
    return peers, [p for p in peers if p.scale > 1.0]


def plan_pick_seeds(store: ResultStore, preset: Preset, methods: list[str] | None = None) -> list[RunDef]:
    """The picked point of every method whose grid is complete, on the preset's other seeds."""
    return [
        point_run(preset, pick.method, pick.scale, seed)
        for pick in picks(store, preset)
        if pick.scale is not None and (not methods or pick.method in methods)
        for seed in preset.seeds
        if seed != TUNE_SEED
    ]


def pick_aps(store: ResultStore, preset: Preset, pick: Pick) -> list[float]:
    """APs of the picked point over the preset's seeds that are cached."""
    assert pick.scale is not None
    recs = (store.get(point_run(preset, pick.method, pick.scale, seed).key) for seed in preset.seeds)
    return [float(rec["eval"]["AP"]) for rec in recs if rec is not None]
