"""``mar bench tune``: a small grid over MAR's hyper-parameters on the synthetic short group.

One value changed at a time from ``GRID_BASE`` (MAR's defaults before tuning), one seed (0), the
group's schedule; every point is a cached run of kind ``tune``. BENCHMARKS.md compares each point
with the group's raw-map MAR (``mar_raw``: the defaults the grid chose) and baseline runs of the
same seed ("what was tried"). A point whose spec equals those defaults is the same run (same
cache key) as the group's ``mar_raw`` seed 0, so it is trained once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.plan import TUNE_SEED, RunDef, student_run, tune_group
from benchmarks.presets import Preset
from benchmarks.quality import QualitySummary, run_in_order
from benchmarks.store import ResultStore

# The point the grid moves around, written out in full so that a grid point keeps its cache key
# when MAR's defaults (``MARSpec``) change (as tuning means them to).
#
# Calibrated on the cpu preset's trained R50 teacher (AP 44.4), first 100 steps of MAR seed 0 with
# the earlier defaults (alpha 0.1, beta 0.02, gamma 50): raw L_fg ~1,000-1,300 and raw L_bg
# ~300-1,000 (trained FPN maps have an RMS of ~30), raw L_rel ~0.01, against a classification
# loss of 0.7-1.0. alpha = beta = 5e-4 put fg and bg at ~0.2-0.6x the classification loss, the
# method's 0.1x-1x band; gamma 50 already puts the relation term at ~0.5-0.7x.
GRID_BASE: dict[str, Any] = {
    "feature_norm": "none",  # the grid tuned MAR on the raw maps (``mar_raw``)
    "alpha": 5e-4,
    "beta": 5e-4,
    "gamma": 50.0,
    "kappas": [1.0, 1.5, 2.0],
    "ring_values": [1.0, 0.5, 0.25],
    "relation_weight": "uniform",
    "kd_warmup_iters": None,
}

# The first stage's choice (the defaults since): the two knobs that gained alone, together.
STAGE_2: dict[str, Any] = {"beta": 1.5e-4, "gamma": 150.0}

# (label, overrides of GRID_BASE): one knob at a time, about 3x either side.
GRID: tuple[tuple[str, dict[str, Any]], ...] = (
    ("base", {}),
    # the defaults calibrated on untrained models: fg ~100x the classification loss here
    ("untrained calibration (alpha=0.1, beta=0.02)", {"alpha": 0.1, "beta": 0.02}),
    ("alpha=1.5e-4", {"alpha": 1.5e-4}),
    ("alpha=1.5e-3", {"alpha": 1.5e-3}),
    ("beta=1.5e-4", {"beta": 1.5e-4}),
    ("beta=1.5e-3", {"beta": 1.5e-3}),
    ("gamma=150", {"gamma": 150.0}),
    ("gamma=450", {"gamma": 450.0}),  # added after gamma=150 beat the base by 3 AP
    # the two one-knob gains together (beta=1.5e-4: +2.2 AP, gamma=150: +3.1 AP over the base):
    # 27.2, now the defaults
    ("beta=1.5e-4 + gamma=150", STAGE_2),
    # stage 2: the remaining knobs, one at a time around the new defaults
    ("stage 2: kd_warmup=0", {**STAGE_2, "kd_warmup_iters": 0}),
    ("stage 2: kd_warmup=30%", {**STAGE_2, "kd_warmup_iters": 0.3}),  # fraction of the run
    (
        "stage 2: rings wide (1,2,3 / 1,.5,.25)",
        {**STAGE_2, "kappas": [1.0, 2.0, 3.0], "ring_values": [1.0, 0.5, 0.25]},
    ),
    (
        "stage 2: rings flat (1,1.5,2 / 1,.75,.5)",
        {**STAGE_2, "kappas": [1.0, 1.5, 2.0], "ring_values": [1.0, 0.75, 0.5]},
    ),
    ("stage 2: rings=2 (1,1.5 / 1,0.5)", {**STAGE_2, "kappas": [1.0, 1.5], "ring_values": [1.0, 0.5]}),
    ("stage 2: relation_weight=mask", {**STAGE_2, "relation_weight": "mask"}),
    ("stage 2: alpha=1.5e-3", {**STAGE_2, "alpha": 1.5e-3}),
)


def plan_tune(preset: Preset) -> list[RunDef]:
    """One ``tune`` run per grid point (seed 0), labelled by the point."""
    group = tune_group(preset)
    iterations = int(group.train["iterations"])
    runs = []
    for label, params in GRID:
        resolved = dict(params)
        if isinstance(resolved.get("kd_warmup_iters"), float):
            resolved["kd_warmup_iters"] = round(resolved["kd_warmup_iters"] * iterations)
        distill = {"method": "mar", **GRID_BASE, **resolved}
        run = student_run(preset, group, label, TUNE_SEED, distill=distill, kind="tune")
        runs.append(RunDef(**{**run.__dict__, "extra": {"params": resolved}}))
    return runs


def run_tune(
    preset: Preset,
    store: ResultStore,
    cache: Path,
    *,
    max_runs: int | None = None,
    points: list[str] | None = None,
    command: str = "",
    on_event: Callable[[str, RunDef, dict | None], None] = lambda *a: None,
) -> QualitySummary:
    """Run the missing grid points (only ``points``, by label, when given; at most ``max_runs``
    trainings), in the order given by ``points``."""
    runs = plan_tune(preset)
    if points is not None:
        by_label = {run.label: run for run in runs}
        runs = [by_label[p] for p in points]
    return run_in_order(preset, store, cache, runs, max_runs=max_runs, command=command, on_event=on_event)
