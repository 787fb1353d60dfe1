"""The "At a glance" section of BENCHMARKS.md: one row per quality group with its verdicts, and
the two speed targets of the benchmark issue, each read from the result files like the rest.

Targets: MAR's step overhead beyond the teacher forward at most ``OVERHEAD_TARGET`` of a student
step (CPU time when measured, else wall time); a MAR step at most ``STEP_RATIO_TARGETS`` of a
student step, with the live teacher and from the teacher cache (issue 37; the bf16 form against
the bf16 student step); relation-loss memory free of an N^2 term, judged by
the exponent of a least-squares fit of peak memory against N on log-log axes (the N x N form
grows close to N^2; the Gram form no faster than its N x C inputs, i.e. about N^1).
"""

from __future__ import annotations

import math
from typing import Any

from benchmarks.equal_tune import peers_picked_heavier, picks
from benchmarks.group_view import GroupView
from benchmarks.markdown import table
from benchmarks.plan import TUNE_SEED
from benchmarks.presets import Preset, get_preset
from benchmarks.stats import beats_by_two_spreads, seed_spread
from benchmarks.store import ResultStore

OVERHEAD_TARGET = 0.05  # of a student step (issue 37; 0.10 before)
# (label, MAR step key, student step key, at most): a distill step over a student step
STEP_RATIO_TARGETS = (
    ("MAR step, live teacher", "mar_step", "student_step", 1.3),
    ("MAR step, teacher outputs from the cache", "mar_step_cached_teacher", "student_step", 1.1),
    ("MAR step in bf16 from the cache, over the bf16 student step", "mar_step_cached_teacher_bf16",
     "student_step_bf16", 1.1),
)  # fmt: skip
MEMORY_EXPONENT_LIMIT = 1.2  # above it, memory grows like N^2 rather than N


def _verdict_word(flag: bool | None) -> str:
    return "cannot say yet" if flag is None else ("**yes**" if flag else "**no**")


def quality_rows(views: list[GroupView]) -> list[list[Any]]:
    """One row per group that has a baseline or a MAR result (AP x 100)."""
    rows = []
    for v in views:
        mar, base = v.summary("mar"), v.summary("baseline")
        if not (mar.n or base.n):
            continue
        beats, _ = beats_by_two_spreads(mar, base)  # None below 2 seeds of either
        spread = seed_spread(mar, base)
        t_ap = v.teacher_ap()
        rank = v.mar_rank()
        rows.append(
            [
                f"`{v.group.name}`",
                f"{base.n} / {mar.n}",
                base.pct(),
                mar.pct(),
                "-" if mar.mean is None or base.mean is None else f"{(mar.mean - base.mean) * 100:+.2f}",
                "-" if spread is None else f"{2 * spread * 100:.2f}",
                _verdict_word(beats),
                "-" if t_ap is None else f"{t_ap * 100:.2f}",
                _verdict_word(None if mar.mean is None or t_ap is None else mar.mean >= t_ap),
                _fraction(v.gap_closed("mar")),
                "-"
                if rank is None
                else f"{rank.place} of {rank.of}" + ("" if rank.complete else " (seeds missing)"),
            ]
        )
    return rows


def _rank_caveat(store: ResultStore, preset: Preset) -> list[str]:
    """A warning under the table when the equal tuning budget found peers under-weighted at the
    calibration point the groups run them at (empty otherwise)."""
    peers, heavier = peers_picked_heavier(picks(store, preset))
    if not heavier:
        return []
    return [
        f"The short group ranks MAR against every peer at its calibration point (x1). With the same "
        f"tuning budget, {len(heavier)} of {len(peers)} peers searched did better with heavier weights on "
        f"seed {TUNE_SEED} ({', '.join(f'{p.method} x{p.scale:.3g}' for p in heavier)}), so that rank "
        "favours MAR; the equal tuning budget section ranks every method at its own best point. The "
        "other RetinaNet groups rank MAR against the two best peers at their picks (labelled "
        "`<peer> x<scale>`) and against the peers that ran there at x1 before.",
        "",
    ]


def _fraction(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def gap_rows(views: list[GroupView]) -> list[list[Any]]:
    """Per group, the fraction of the teacher-baseline gap each distilled student closes (mean
    AP), best first; only students with every seed in are ranked, the others are listed apart."""
    rows = []
    for v in views:
        full, partial = [], []
        for label in v.labels:
            frac = v.gap_closed(label)
            if label == "baseline" or frac is None:
                continue
            (full if v.summary(label).n == len(v.preset.seeds) else partial).append((label, frac))
        if not full and not partial:
            continue
        full.sort(key=lambda t: -t[1])
        rows.append(
            [
                f"`{v.group.name}`",
                ", ".join(f"{label} {f:.2f}" for label, f in full) or "-",
                ", ".join(f"{label} {f:.2f} (n={v.summary(label).n})" for label, f in partial) or "-",
            ]
        )
    return rows


def memory_exponent(rows: list[dict[str, Any]], form: str) -> tuple[float, int, int] | None:
    """(slope of log peak memory over log N, smallest N, largest N) for one relation-loss form."""
    pts = [(x["N"], x["peak_rss_mb"]) for x in rows if x["form"] == form and x.get("peak_rss_mb", 0) > 0]
    if len(pts) < 2:
        return None
    xs, ys = [math.log(n) for n, _ in pts], [math.log(m) for _, m in pts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return slope, min(n for n, _ in pts), max(n for n, _ in pts)


def _overhead_line(part: str, result: dict[str, Any]) -> str | None:
    if "skipped" in result:
        return None
    ratios = result.get("ratios_cpu") or result["ratios"]
    clock = "CPU time" if result.get("ratios_cpu") else "wall time"
    overhead = ratios["distillation_overhead"]
    met = "met" if overhead <= OVERHEAD_TARGET else "NOT met"
    arch = result["student_model"]["arch"]
    return (
        f"- MAR step overhead beyond the teacher forward, {arch} (`{part}`): **{overhead:.2f}** of a "
        f"student step ({clock}); target at most {OVERHEAD_TARGET:.2f}: **{met}**."
    )


def _step_ratio_lines(part: str, result: dict[str, Any]) -> list[str]:
    """One line per ``STEP_RATIO_TARGETS`` entry the result measured, on CPU time when it has it."""
    if "skipped" in result:
        return []
    med = result.get("median_cpu_s") or result["median_s"]
    clock = "CPU time" if result.get("median_cpu_s") else "wall time"
    lines = []
    for label, mar_key, student_key, target in STEP_RATIO_TARGETS:
        if mar_key not in med or student_key not in med:
            continue
        ratio = med[mar_key] / med[student_key]
        met = "met" if ratio <= target else "NOT met"
        lines.append(
            f"- {label}, {result['student_model']['arch']} (`{part}`): **{ratio:.2f}x** a student step "
            f"({clock}); target at most {target}x: **{met}**."
        )
    return lines


def _memory_line(result: dict[str, Any]) -> str | None:
    gram = memory_exponent(result["rows"], "gram")
    if gram is None:
        return None
    naive = memory_exponent(result["rows"], "naive")
    met = "met" if gram[0] <= MEMORY_EXPONENT_LIMIT else "NOT met"
    naive_txt = (
        f"; the naive N x N form grows as N^{naive[0]:.2f} (N {naive[1]:,} to {naive[2]:,})" if naive else ""
    )
    return (
        f"- Relation loss peak memory, Gram form: grows as **N^{gram[0]:.2f}** (least-squares fit, "
        f"N {gram[1]:,} to {gram[2]:,}){naive_txt}; target no N^2 term (exponent at most "
        f"{MEMORY_EXPONENT_LIMIT}): **{met}**."
    )


def glance_section(store: ResultStore, presets: list[str]) -> list[str]:
    lines = ["## At a glance", ""]
    for name in presets:
        preset = get_preset(name)
        views = [GroupView(store, preset, g) for g in preset.groups]
        rows = quality_rows(views)
        perf = store.newest_perf_parts(name)
        lines += [f"### preset `{name}`", ""]
        if rows:
            lines += [
                "Quality (AP x 100, mean ± sample std over the seeds cached; details and the seeds still "
                "missing in the group sections below):",
                "",
                *table(
                    [
                        "group",
                        "seeds (baseline / MAR)",
                        "baseline",
                        "MAR",
                        "gain",
                        "twice the seed spread",
                        "MAR beats the baseline by more than twice the spread",
                        "teacher",
                        "MAR reaches the teacher",
                        "fraction of the teacher gap MAR closes",
                        "MAR's rank among the peers",
                    ],
                    rows,
                ),
                "",
                *_rank_caveat(store, preset),
                "Fraction of the teacher-baseline gap each student closes, (student - baseline) / (teacher - "
                'baseline) by mean AP: 1 reaches the teacher, 0 is the baseline; none ("-" above) where the teacher '
                "is not clearly better than the baseline (see the group's verdicts), since a fraction of a gap "
                "within the seed noise says nothing:",
                "",
                *table(
                    ["group", "every seed in (best first)", "seeds missing"],
                    gap_rows(views),
                ),
                "",
            ]
        else:
            lines += [f"Quality: nothing run yet (`mar bench quality --preset {name}`).", ""]
        targets = [_overhead_line(p, perf[p][2]) for p in ("steps", "steps_frcnn") if p in perf]
        targets += [
            line for p in ("steps", "steps_frcnn") if p in perf for line in _step_ratio_lines(p, perf[p][2])
        ]
        if "relation" in perf:
            targets.append(_memory_line(perf["relation"][2]))
        targets = [t for t in targets if t]
        lines += (
            ["Speed targets:", "", *targets, ""]
            if targets
            else [f"Speed targets: not measured yet (`mar bench perf --preset {name}`).", ""]
        )
    return lines
