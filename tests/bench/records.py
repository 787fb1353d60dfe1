"""Result records written by hand, for the tests of what is computed from them (no training)."""

from __future__ import annotations

from benchmarks.plan import RunDef
from benchmarks.store import ResultStore


def fake_result(store: ResultStore, run: RunDef, ap: float) -> None:
    """Store a minimal finished-run record of ``run`` with final AP ``ap`` (in [0, 1])."""
    store.put(
        {
            "key": run.key,
            "kind": run.kind,
            "preset": run.preset,
            "group": run.group,
            "label": run.label,
            "seed": run.seed,
            "spec": run.spec,
            "eval": {"AP": ap},
            "wall_seconds": 1.0,
            "params": {"model": 1},
        }
    )
