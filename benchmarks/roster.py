"""Which students each group runs: a group's student list with ``@best_peers`` resolved, and
every run of a preset in the order they run (per group: seed 0 of every student, then seed 1, ...).

``@best_peers`` are the two peers with the best equal-tune picks (issue 19's equal tuning
budget: every method searched the same way on the short group, then run at its pick), each at its
picked weights, so that a group beyond the short one compares MAR with peers at their best.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from benchmarks.equal_tune import pick_aps, picks
from benchmarks.plan import RunDef, student_run, tune_group
from benchmarks.presets import BEST_PEERS, FALLBACK_PEERS, PEERS, GroupDef, Preset
from benchmarks.store import ResultStore
from benchmarks.tune_points import point_label


@dataclass(frozen=True)
class PeerChoice:
    peers: tuple[str, ...]
    source: str  # human-readable: where the choice came from
    fallback: bool


def group_label(method: str, scale: float) -> str:
    """A peer's label at its pick in a group: the plain peer at x1 (its calibration point is the
    group's peer run, the same spec), else its point's label."""
    return method if scale == 1.0 else point_label(method, scale)


def best_peers(store: ResultStore, preset: Preset, n: int = 2) -> PeerChoice:
    """The ``n`` peers whose equal-tune picks (``mar bench equal-tune``) have the highest mean AP
    over every seed of the tuning group, each labelled at its pick (``"cwd_head x9"``); a peer whose
    search is incomplete, or whose pick lacks a seed, is left out and named in the source. Fewer
    than ``n`` complete: ``FALLBACK_PEERS`` at their calibration points."""
    seeds = len(preset.seeds)
    means: dict[str, float] = {}
    left_out = []
    for pick in picks(store, preset):
        if pick.method not in PEERS:
            continue
        if pick.scale is None:
            left_out.append(f"{pick.method} (search incomplete)")
            continue
        label = group_label(pick.method, pick.scale)
        aps = pick_aps(store, preset, pick)
        if len(aps) < seeds:
            left_out.append(f"{label} ({len(aps)}/{seeds} seeds)")
        else:
            means[label] = statistics.fmean(aps)
    source = f"equal-tune picks in {tune_group(preset).name}"
    if len(means) < n:
        return PeerChoice(
            FALLBACK_PEERS[:n],
            f"fallback {'+'.join(FALLBACK_PEERS[:n])}: fewer than {n} peers with a pick run on every "
            f"seed ({source}); left out: {', '.join(left_out) or 'none'}",
            True,
        )
    ranked = sorted(means, key=lambda p: -means[p])[:n]
    shown = ", ".join(f"{p} {means[p] * 100:.1f}" for p in ranked)
    note = f" (not complete yet: {', '.join(left_out)})" if left_out else ""
    return PeerChoice(tuple(ranked), f"best mean AP at their {source}: {shown}{note}", False)


def group_students(
    store: ResultStore, preset: Preset, group: GroupDef
) -> tuple[list[str], PeerChoice | None]:
    """The group's student labels with ``@best_peers`` resolved, and the choice made."""
    labels: list[str] = []
    choice = None
    for label in group.students:
        if label == BEST_PEERS:
            choice = best_peers(store, preset)
            labels.extend(p for p in choice.peers if p not in labels)
        else:
            labels.append(label)
    return labels, choice


def plan_runs(
    store: ResultStore,
    preset: Preset,
    groups: list[str] | None = None,
    students: list[str] | None = None,
    seeds: list[int] | None = None,
) -> list[RunDef]:
    """Student runs of the selected groups, seeds and students, in run order."""
    out = []
    for group in preset.groups:
        if groups and group.name not in groups:
            continue
        labels, choice = group_students(store, preset, group)
        extra = (
            {
                "peer_selection": {
                    "peers": list(choice.peers),
                    "source": choice.source,
                    "fallback": choice.fallback,
                }
            }
            if choice
            else {}
        )
        for seed in preset.seeds:
            if seeds is not None and seed not in seeds:
                continue
            for label in labels:
                if students and label not in students:
                    continue
                run = student_run(preset, group, label, seed)
                out.append(RunDef(**{**run.__dict__, "extra": extra}))
    return out
