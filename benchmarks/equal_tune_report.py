"""The "Equal tuning budget" section of BENCHMARKS.md (``mar bench equal-tune``).

Per method: the seed-0 AP at each grid point, the point the rule picked, and the picked point's
mean over the seeds run; then the methods ranked by that mean, with the baseline and the teacher.
"""

from __future__ import annotations

from typing import Any

from benchmarks.equal_tune import Pick, peers_picked_heavier, pick_aps, picks
from benchmarks.group_view import GroupView
from benchmarks.markdown import table
from benchmarks.plan import TUNE_SEED, tune_group
from benchmarks.presets import get_preset
from benchmarks.stats import Summary
from benchmarks.store import ResultStore
from benchmarks.tune_points import FIRST_SCALES


def _ap(x: float | None) -> str:
    return "missing" if x is None else f"{x * 100:.2f}"


def _mean_str(s: Summary) -> str:
    """``pct`` with the count of seeds always said."""
    return s.pct() if s.n < 2 else f"{s.pct()} (n={s.n})"


def _seed0_lines(found: list[Pick]) -> list[str]:
    """Every picked method ranked by its seed-0 AP at its pick, and what the picks say about the
    groups that run the peers at their calibration point (x1)."""
    chosen = sorted((p for p in found if p.scale is not None), key=lambda p: -p.ap_by_scale[p.scale])
    if not chosen:
        return []
    lines = [
        f"- Seed {TUNE_SEED} at each method's pick (one seed: a difference below the group's seed spread "
        "is noise): "
        + ", ".join(
            f"{i}. {p.method} x{p.scale:.3g} {p.ap_by_scale[p.scale] * 100:.2f}"
            for i, p in enumerate(chosen, 1)
        )
        + "."
    ]
    peers, heavier = peers_picked_heavier(found)
    if heavier:
        lines.append(
            f"- The short group runs every peer at its calibration point (x1); {len(heavier)} of the "
            f"{len(peers)} peers searched did better with heavier weights on seed {TUNE_SEED}: "
            f"{', '.join(f'{p.method} (x{p.scale:.3g})' for p in heavier)}. Its rank of MAR compares "
            "MAR's defaults with under-weighted peers; this section's ranks are the fair ones. The long, "
            "BCCD and small-gap groups run the two best picks (every seed in) at their picked weights."
        )
    return lines


def equal_tune_section(store: ResultStore, presets: list[str]) -> list[str]:
    lines = [
        "## Equal tuning budget (`mar bench equal-tune`)",
        "",
        "Every KD method, MAR included, from its calibration-rule point (each KD term at 0.5x the "
        "classification loss at the start), with all its KD weights scaled together by one factor in a "
        f"three-point line search on seed {TUNE_SEED} of the short synthetic group: x1 and x3, then one "
        "step further in the direction that helped (x9 when x3 beat x1, else x1/3). One rule picks every "
        "method's point (the highest seed-0 AP; a tie keeps x1), which then runs on the other "
        "seeds. `mar` is MAR's default form (the mask-guided terms on per-channel standardised maps); "
        "`mar_raw` is MAR on the raw maps, here from the calibration rule's weights, not from the "
        "defaults its own 16-point grid chose (section below).",
        "",
    ]
    for name in presets:
        preset = get_preset(name)
        group = tune_group(preset)
        found = picks(store, preset)
        if not any(ap is not None for p in found for ap in p.ap_by_scale.values()):
            lines += [f"Preset `{name}`: no point run yet (`mar bench equal-tune --preset {name}`).", ""]
            continue
        view = GroupView(store, preset, group)
        rows: list[list[Any]] = []
        ranked: list[tuple[str, float, int]] = []
        for p in found:
            s = Summary.of(pick_aps(store, preset, p) if p.scale is not None else [])
            if s.n:
                ranked.append((p.method, s.mean, s.n))
            third = p.third
            rows.append(
                [
                    p.method,
                    *(_ap(p.ap_by_scale[x]) for x in FIRST_SCALES),
                    "after x1 and x3" if third is None else f"x{third:.3g}: {_ap(p.ap_by_scale[third])}",
                    "grid incomplete" if p.scale is None else f"x{p.scale:.3g}",
                    _mean_str(s),
                ]
            )
        base, t_ap = view.summary("baseline"), view.teacher_ap()
        lines += [
            f"Preset `{name}`, group `{group.name}` (baseline {base.pct()}, teacher "
            f"{'-' if t_ap is None else f'{t_ap * 100:.2f}'} AP):",
            "",
            *table(
                [
                    "method",
                    *(f"x{x:.3g} (seed {TUNE_SEED})" for x in FIRST_SCALES),
                    f"third point (seed {TUNE_SEED})",
                    "pick",
                    "pick, mean over seeds",
                ],
                rows,
            ),
            "",
        ]
        full = sorted((r for r in ranked if r[2] == len(preset.seeds)), key=lambda r: -r[1])
        if full:
            lines.append(
                "- Ranked at their picked points, every seed in: "
                + ", ".join(f"{i}. {m} {ap * 100:.2f}" for i, (m, ap, _) in enumerate(full, 1))
                + "."
            )
        lines += _seed0_lines(found)
        edge = [f"{p.method} (x{p.scale:.3g})" for p in found if p.at_edge]
        if edge:
            lines.append(
                "- Picked at the end of the search (the third point), so a longer search may do better: "
                f"{', '.join(edge)}."
            )
        waiting = [p.method for p in found if p.scale is None]
        partial = [m for m, _, n in ranked if n < len(preset.seeds)]
        if waiting:
            lines.append(f"- Grid not complete yet: {', '.join(waiting)}.")
        if partial:
            lines.append(f"- Picked, other seeds not run yet: {', '.join(partial)} (`--picks`).")
        lines.append("")
    return lines
