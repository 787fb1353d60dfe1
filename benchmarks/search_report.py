"""BENCHMARKS.md's section on the distiller search (``distill.method: "auto"``, the ``auto``
student of every group): auto beside the baseline and the best single method of the group, its
compute as a multiple of one plain run, what it chose on each seed; and the proxy's fidelity,
the rank correlation between each candidate's selection AP at the search's first rung and the
full-run validation AP of the same method in the same group and seed. Torch-free."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.group_view import GroupView, record_ap
from benchmarks.markdown import table
from benchmarks.plan import student_run, takes_tuning_points
from benchmarks.presets import SEARCH_STUDENT, Preset
from benchmarks.stats import Summary, spearman
from benchmarks.store import ResultStore
from benchmarks.tune_points import peer_labels, point_label
from benchmarks.warm_start import current_record
from mar_core.methods import AutoSpec
from mar_core.search.candidates import search_candidates

__all__ = ["candidate_group_label", "search_section"]


def candidate_group_label(distill: dict[str, Any] | None) -> str:
    """The group label whose full runs are a search candidate's: ``baseline`` for no KD,
    ``cwd_head x9`` for a method at ``auto_scale`` 9, the method's name at its defaults."""
    if distill is None:
        return "baseline"
    scale = distill.get("auto_scale")
    return point_label(distill["method"], scale) if scale else distill["method"]


def _with_points(store: ResultStore, v: GroupView) -> dict[str, dict[int, dict[str, Any]]]:
    """The group's records by label and seed, with every peer's tuning points that ran in it
    (the short group's equal-tune picks are reported by their own section, not by the group's)."""
    recs = dict(v.recs)
    if takes_tuning_points(v.group):
        for label in peer_labels(True):
            if label not in recs:
                found = {
                    seed: rec
                    for seed in v.preset.seeds
                    if (rec := current_record(store, v.preset, student_run(v.preset, v.group, label, seed)))
                }
                if found:
                    recs[label] = found
    return recs


def _best_single(recs: dict[str, dict[int, dict[str, Any]]]) -> tuple[str, Summary] | None:
    """The best method by mean AP over at least 2 seeds (not the baseline, not auto)."""
    rows = [
        (label, Summary.of([record_ap(r) for r in by_seed.values()]))
        for label, by_seed in recs.items()
        if label not in ("baseline", SEARCH_STUDENT)
    ]
    rows = [(label, s) for label, s in rows if s.n >= 2 and s.mean is not None]
    return max(rows, key=lambda row: row[1].mean) if rows else None


def _diff(auto: Summary, other: Summary) -> tuple[float, float] | None:
    """(auto's mean minus the other's, the larger of the two sample stds); None below 2 seeds."""
    if auto.std is None or other.std is None or auto.mean is None or other.mean is None:
        return None
    return auto.mean - other.mean, max(auto.std, other.std)


def _within_spread(auto: Summary, best: Summary) -> str:
    d = _diff(auto, best)
    return "-" if d is None else f"{d[0] * 100:+.2f} ({'yes' if d[0] >= -d[1] else 'no'})"


def _beats_twice(auto: Summary, base: Summary) -> str:
    d = _diff(auto, base)
    return "-" if d is None else f"{d[0] * 100:+.2f} ({'yes' if d[0] > 2 * d[1] else 'no'})"


def _group_row(v: GroupView, every: dict[str, dict[int, dict[str, Any]]]) -> list[Any] | None:
    recs = v.recs.get(SEARCH_STUDENT, {})
    if not recs:
        return None
    auto, base = v.summary(SEARCH_STUDENT), v.summary("baseline")
    best = _best_single(every)
    computes = [r["search"]["compute"] for r in recs.values() if r.get("search")]
    multiples = [c["multiple"] for c in computes if c.get("multiple") is not None]
    planned = [c["planned_multiple"] for c in computes if c.get("planned_multiple") is not None]
    mar_wall = [r["wall_seconds"] for r in v.recs.get("mar", {}).values()]
    auto_wall = [r["wall_seconds"] for r in recs.values()]
    wall_ratio = (
        f"{statistics.fmean(auto_wall) / statistics.fmean(mar_wall):.2f}x" if mar_wall and auto_wall else "-"
    )
    chosen = ", ".join(
        f"s{seed}: {r['search']['chosen']}" for seed, r in sorted(recs.items()) if r.get("search")
    )
    return [
        v.group.name,
        f"{auto.pct()} ({auto.n})",
        f"{best[0]} {best[1].pct()}" if best else "-",
        _within_spread(auto, best[1]) if best else "-",
        base.pct(),
        _beats_twice(auto, base),
        (f"{max(planned):.2f}x" if planned else "-")
        + (f" ({min(multiples):.2f}-{max(multiples):.2f}x)" if multiples else ""),
        wall_ratio,
        chosen,
    ]


def _fidelity(
    v: GroupView, every: dict[str, dict[int, dict[str, Any]]]
) -> list[tuple[int, float | None, list[str]]]:
    """Per seed of auto: Spearman's rho of (first-rung selection AP, full-run AP) over the
    candidates with a full run in the group, and those pairs as text."""
    out = []
    for seed, rec in sorted(v.recs.get(SEARCH_STUDENT, {}).items()):
        search = rec.get("search") or {}
        if not search.get("rungs"):
            continue
        first = str(search["rungs"][0]["step"])
        xs, ys, pairs = [], [], []
        for row in search["leaderboard"]:
            full = record_ap(every.get(candidate_group_label(row["distill"]), {}).get(seed))
            proxy = row["rungs"].get(first, {}).get("AP")
            if full is None or proxy is None:
                continue
            xs.append(proxy)
            ys.append(full)
            pairs.append(f"{row['label']} {proxy * 100:.1f} / {full * 100:.1f}")
        out.append((seed, spearman(xs, ys), pairs))
    return out


def _candidate_names(two_stage: bool) -> str:
    """The labels of a default search's candidates for the family, as the job makes them."""
    return ", ".join(f"`{c.label}`" for c in search_candidates(AutoSpec(), two_stage))


def search_section(store: ResultStore, preset: Preset) -> list[str]:
    """The section for ``preset``'s groups that have auto runs; nothing when none has."""
    views = [GroupView(store, preset, g) for g in preset.groups if SEARCH_STUDENT in g.students]
    every = {v.group.name: _with_points(store, v) for v in views}
    rows = [row for row in (_group_row(v, every[v.group.name]) for v in views) if row is not None]
    if not rows:
        return []
    lines = [
        f"### Distiller search (`auto`), preset `{preset.name}`",
        "",
        'The `auto` student of each group is a job with `distill: {"method": "auto"}` at its default '
        "budget (2x one plain run): successive halving over the registry's candidates "
        f"({_candidate_names(False)} on one-stage students; {_candidate_names(True)} on two-stage ones), "
        "ranked on 15% of the training split, the winner continued to the full schedule on the whole "
        "split. `vs best` is auto's mean minus the group's best single method (yes: within one seed "
        "spread or above); `vs baseline` yes when the gain is above twice the seed spread. Compute: the "
        "job's training steps over one plain run's (the plan, exact; the largest over seeds) and, in "
        "brackets, its measured multiple over seeds (its wall time over its KD trials' median step time x "
        "the schedule: evaluations and set-up included, and the load of a shared machine, which changes "
        "over a run, too), and its mean wall time over the group's MAR runs "
        "(machines and load may differ).",
        "",
        *table(
            [
                "group",
                "auto (seeds)",
                "best single method",
                "vs best",
                "baseline",
                "vs baseline",
                "compute",
                "wall / MAR's",
                "chosen per seed",
            ],
            rows,
        ),
        "",
        "Proxy fidelity: per seed, Spearman's rho between each candidate's selection AP at the first "
        "rung and the full-run validation AP of the same method in the group (the full runs train on "
        "the whole split with the benchmark's calibrated weights; `proxy / full` AP per candidate):",
        "",
    ]
    all_rho = []
    for v in views:
        for seed, rho, pairs in _fidelity(v, every[v.group.name]):
            if rho is not None:
                all_rho.append(rho)
            rho_text = "-" if rho is None else f"{rho:+.2f}"
            lines.append(
                f"- `{v.group.name}` s{seed}: rho {rho_text} ({'; '.join(pairs) or 'no full runs'})."
            )
    if all_rho:
        lines.append(f"- Mean rho over {len(all_rho)} searches: {statistics.fmean(all_rho):+.2f}.")
    return lines + [""]
