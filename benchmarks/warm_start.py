"""Whether a warm-started run's result still belongs to the start on record.

A warm-started run loads the final weights of its start (each seed's baseline run of another
group, ``plan.warm_start_run``). Those weights live in the ignored cache; on a machine without
them the start is trained again and its result file replaced (``quality.Runner.ensure_warm_start``),
and training is not bit-reproducible across machines and sessions (seen: the small-gap baseline of
seed 0 gave 26.42 AP on 2026-12-02 and 29.06 AP on 2026-12-07, same spec). A result continued from
the earlier start is then *stale*: its gain over "the start" would be measured against weights it
never loaded, and it cannot be compared with runs continued from the new start. Stale results count
as missing (``--list``, the runner) and are left out of the report until they are run again.

A warm-started result records its start as ``warm_start`` (the start's key, ``finished_at`` and AP);
records written before that field existed belong to the start when they finished after it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from benchmarks.plan import WARM_PREFIX, RunDef, warm_start_run
from benchmarks.presets import Preset
from benchmarks.store import ResultStore

START_FIELD = "warm_start"


def is_warm(run: RunDef) -> bool:
    """Whether ``run`` starts from another run's final weights."""
    return str(run.spec.get("model", {}).get("init_checkpoint") or "").startswith(WARM_PREFIX)


def start_record(store: ResultStore, preset: Preset, run: RunDef) -> dict[str, Any] | None:
    """The result of the run a warm-started ``run`` starts from; None when it has none."""
    return store.get(warm_start_run(preset, preset.group(run.group), run.seed).key)


def start_stamp(start: dict[str, Any]) -> dict[str, Any]:
    """What a warm-started result records of its start (``START_FIELD``)."""
    return {"key": start["key"], "finished_at": start.get("finished_at"), "AP": start["eval"]["AP"]}


def _finished(rec: dict[str, Any]) -> dt.datetime | None:
    stamp = rec.get("finished_at")
    return dt.datetime.fromisoformat(stamp) if stamp else None


def belongs_to_start(rec: dict[str, Any], start: dict[str, Any] | None) -> bool:
    """Whether warm-started result ``rec`` was continued from the start result ``start`` on record:
    by its ``warm_start`` stamp, or (older records) by finishing after it. Records without times
    (written by hand in tests) belong."""
    if start is None:
        return False
    stamp = rec.get(START_FIELD)
    if stamp is not None:
        return stamp["key"] == start["key"] and stamp["finished_at"] == start.get("finished_at")
    ended, started = _finished(rec), _finished(start)
    return ended is None or started is None or ended >= started


def current_record(store: ResultStore, preset: Preset, run: RunDef) -> dict[str, Any] | None:
    """``run``'s result, or None when it has none or (warm-started) it is stale."""
    rec = store.get(run.key)
    if rec is None or not is_warm(run):
        return rec
    return rec if belongs_to_start(rec, start_record(store, preset, run)) else None


def run_state(store: ResultStore, preset: Preset, run: RunDef) -> str:
    """``"cached"``, ``"stale"`` (a warm-started result continued from an earlier start) or
    ``"missing"``."""
    if current_record(store, preset, run) is not None:
        return "cached"
    return "stale" if store.has(run.key) else "missing"
