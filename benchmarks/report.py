"""``mar bench report``: BENCHMARKS.md, generated from the result files only.

Every number comes from a record in the results folder; a run that has not been made is listed
as missing, never filled in. Sections: commands, machine, quality per preset and group (mean ±
sample std over seeds, gain over the baseline, teacher AP, wall time, parameters, the verdicts),
speed (the newest ``perf-<preset>-*.json`` of each preset), the dataset check at COCO scale (the
newest ``dataset-check-*.json``), the soak (the newest ``soak-*.json``) and the tuning grid.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks.calibrate import format_calibration
from benchmarks.data_pipeline import data_pipeline_section
from benchmarks.dataset_check import dataset_check_section
from benchmarks.diagnose import diagnose_section
from benchmarks.equal_tune_report import equal_tune_section
from benchmarks.group_view import TEACHER_MARGIN, GroupView, record_ap
from benchmarks.markdown import table
from benchmarks.perf import PARTS as PERF_PARTS
from benchmarks.perf_format import FORMATTERS
from benchmarks.plan import TUNE_SEED, student_run, tune_group
from benchmarks.presets import (
    AUTO_WEIGHTS_STUDENT,
    RAW_MAR,
    RENAMED_LABELS,
    REPORTED_PRESETS,
    Preset,
    get_preset,
)
from benchmarks.report_glance import glance_section
from benchmarks.search_report import search_section
from benchmarks.slow_clients import slow_clients_section
from benchmarks.soak_format import soak_section
from benchmarks.stats import Summary, beats_by_two_spreads, same_seed_gains, seed_spread
from benchmarks.store import REPO_ROOT, ResultStore
from benchmarks.tune import GRID_BASE, plan_tune
from mar_core.methods.mar import MARSpec

CONVERGED_RISE = 0.005  # AP (0.5 points): "no longer rises" over the last fifth
MAR_LOSS_KEYS = (
    "loss/det/classification",
    "loss/det/bbox_regression",
    "loss/det/loss_objectness",
    "loss/det/loss_classifier",
    "loss/kd/fg",
    "loss/kd/bg",
    "loss/kd/relation",
)


def _model_str(m: dict[str, Any]) -> str:
    size = m["min_size"] if m["min_size"] == m["max_size"] else f"{m['min_size']}-{m['max_size']}"
    return f"{m['arch']} {m['backbone']}-FPN{m['fpn_channels']}, {size} px"


def _train_str(t: dict[str, Any]) -> str:
    extra = f", eval every {t['eval_every']}" if t.get("eval_every") else ""
    return (
        f"{t['iterations']} iterations, batch {t['batch_size']}, {t['optimizer']} lr {t['lr']}, "
        f"{t['schedule']} schedule{extra}"
    )


def _mparams(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f} M"


def _mean_wall(recs: list[dict[str, Any]]) -> str:
    if not recs:
        return "-"
    walls = [r["wall_seconds"] for r in recs]
    mark = " †" if any(r.get("resumed_from_step") for r in recs) else ""
    spread = f" ({min(walls) / 60:.1f}-{max(walls) / 60:.1f})" if len(walls) > 1 else ""
    return f"{statistics.fmean(walls) / 60:.1f} min{spread}{mark}"


def _student_table(v: GroupView) -> list[str]:
    base = v.summary("baseline")
    rows = []
    for label in v.labels:
        recs = v.recs.get(label, {})
        s = v.summary(label)
        gain = (
            "-"
            if s.mean is None or base.mean is None or label == "baseline"
            else f"{(s.mean - base.mean) * 100:+.2f}"
        )
        ap50 = Summary.of([record_ap(r, "AP50") for r in recs.values()])
        per_seed = ", ".join(f"s{seed}: {record_ap(r) * 100:.2f}" for seed, r in sorted(recs.items())) or "-"
        params = next(iter(recs.values()))["params"]["model"] if recs else None
        rows.append(
            [
                label,
                f"{len(recs)}/{len(v.preset.seeds)}",
                s.pct(),
                ap50.pct(),
                gain,
                per_seed,
                _mean_wall(list(recs.values())),
                _mparams(params),
            ]
        )
    return table(
        [
            "student",
            "seeds",
            "AP (mean ± std)",
            "AP50",
            "gain over baseline (AP)",
            "AP per seed",
            "wall time / run (min-max)",
            "params",
        ],
        rows,
    )


def _verdicts(v: GroupView) -> list[str]:
    mar, base = v.summary("mar"), v.summary("baseline")
    lines = []
    if mar.n == 0 or base.n == 0:
        lines.append(f"- MAR vs baseline: cannot say yet (MAR {mar.n}, baseline {base.n} seeds cached).")
    else:
        lines.append(
            f"- MAR beats the baseline by more than twice the seed spread: "
            f"{beats_by_two_spreads(mar, base)[1]}."
        )
        paired = same_seed_gains(v.ap_by_seed("mar"), v.ap_by_seed("baseline"))
        if paired:
            lines.append(f"- Same seed, same start (initial weights and batch order): MAR {paired}.")
    t_ap = v.teacher_ap()
    if t_ap is not None and base.mean is not None:
        margin = v.teacher_margin()
        lines.append(
            f"- Teacher clearly better than the baseline student (by more than {margin * 100:.1f} AP, the "
            f"larger of {TEACHER_MARGIN * 100:.0f} points and twice the baseline's seed spread): "
            f"{'yes' if v.teacher_clearly_better() else 'no, KD has little to transfer'} (teacher {t_ap * 100:.2f}, "
            f"baseline {base.mean * 100:.2f})."
        )
    if mar.mean is None or t_ap is None:
        lines.append(
            "- MAR reaches the teacher: cannot say yet ("
            + ("no MAR run" if mar.mean is None else "teacher not trained")
            + ")."
        )
    else:
        gap = (mar.mean - t_ap) * 100
        lines.append(
            f"- MAR reaches the teacher: {'yes' if gap >= 0 else 'no'} (MAR {mar.mean * 100:.2f} vs "
            f"teacher {t_ap * 100:.2f} AP, {gap:+.2f})."
        )
    rank = v.mar_rank()
    if rank is not None:
        shown = ", ".join(f"{x} {ap * 100:.2f}" for x, ap in rank.ranked)
        lines.append(
            f"- MAR ranks {rank.place} of {rank.of} among MAR and the peers with results "
            f"(mean AP: {shown})" + ("" if rank.complete else "; not every seed is in yet") + "."
        )
    else:
        lines.append("- MAR's rank among the peers: cannot say yet (no MAR or no peer result).")
    lines += _ablations(v)
    lines += _halves(v)
    lines += _auto_vs_tuned(v)
    tuned_seeds = sorted(seed for seed, rec in v.recs.get(RAW_MAR, {}).items() if rec.get("kind") == "tune")
    if tuned_seeds:
        lines.append(
            f"- Selection bias: `{RAW_MAR}`'s seed {', '.join(map(str, tuned_seeds))} run is the point the "
            "tuning grid chose on that seed (below), so it reads high; the other seeds are unbiased. `mar` "
            "was not tuned here (its alpha / beta are sized by the calibration rule). The peers' weights "
            "here were set by the calibration rule, not tuned; the equal tuning budget section gives every "
            "method, MAR included, the same grid."
        )
    return lines


def _ablations(v: GroupView) -> list[str]:
    """Each MAR variant with results against its full form (``mar_raw_*`` against ``mar_raw``,
    every other ``mar_*`` against ``mar``, ``baseline_*`` against ``baseline``): the difference of
    the means and whether it exceeds twice the seed spread (below it, one cannot tell them apart)."""
    lines = []
    for full, variants in (
        ("baseline", [x for x in v.labels if x.startswith("baseline_")]),
        ("mar", [x for x in v.labels if x.startswith("mar_") and not x.startswith(RAW_MAR)]),
        (RAW_MAR, [x for x in v.labels if x.startswith(f"{RAW_MAR}_") and x != AUTO_WEIGHTS_STUDENT]),
    ):
        mar = v.summary(full)
        parts = []
        for label in variants:
            s = v.summary(label)
            if not s.n or not mar.n:
                continue
            diff = (s.mean - mar.mean) * 100
            spread = seed_spread(s, mar)
            if spread is None:
                clear = "cannot tell yet (one seed)"
            else:
                clear = "beyond" if abs(diff) > 2 * spread * 100 else "within"
                clear += f" twice the spread, {2 * spread * 100:.2f}"
            parts.append(f"{label} {diff:+.2f} ({clear})")
        if parts:
            lines.append(f"- Ablations against `{full}` (mean AP difference): {'; '.join(parts)}.")
    return lines


# (full method, its relation half alone, its mask-guided half alone): what each half adds
HALVES = (
    ("mar", "mar_relation_only", "mar_mask_only"),
    (RAW_MAR, "mar_relation_only", "mar_raw_mask_only"),
)


def _halves(v: GroupView) -> list[str]:
    """Per formulation with results: the full method against each half alone, i.e. what the other
    half adds, with the two-spreads verdict and the same-seed differences."""
    lines = []
    for full, rel_only, mask_only in HALVES:
        f = v.summary(full)
        if not f.n:
            continue
        for alone, added in ((rel_only, "the mask-guided half"), (mask_only, "the relation half")):
            a = v.summary(alone)
            if not a.n:
                continue
            verdict = beats_by_two_spreads(f, a)[1]
            paired = same_seed_gains(v.ap_by_seed(full), v.ap_by_seed(alone))
            lines.append(
                f"- What {added} adds in `{full}` (`{full}` against `{alone}`): beats it by more than twice "
                f"the seed spread: {verdict}"
                + (f"; same seed: {full} {paired.replace('the baseline', alone)}" if paired else "")
                + "."
            )
    return lines


def _weights_str(weights: dict[str, Any]) -> str:
    return ", ".join(f"{k} {'-' if w is None else f'{w:.3g}'}" for k, w in weights.items())


def _auto_vs_tuned(v: GroupView) -> list[str]:
    """``"auto"`` KD weights (``AUTO_WEIGHTS_STUDENT``) against raw MAR's tuned defaults (``mar_raw``):
    the difference of the means, whether it lies within twice the seed spread (the goal: auto
    as good as tuning, as far as the seeds can tell), and the weights each used."""
    if AUTO_WEIGHTS_STUDENT not in v.labels:
        return []
    auto, mar = v.summary(AUTO_WEIGHTS_STUDENT), v.summary(RAW_MAR)
    if not auto.n or not mar.n:
        return [
            f"- Auto vs tuned KD weights: cannot say yet ({AUTO_WEIGHTS_STUDENT} {auto.n}, {RAW_MAR} {mar.n} seeds)."
        ]
    diff = (auto.mean - mar.mean) * 100
    spread = seed_spread(auto, mar)
    if spread is None:
        verdict = "cannot tell yet (one seed)"
    else:
        within = abs(diff) <= 2 * spread * 100
        verdict = (
            f"{'within' if within else 'beyond'} twice the seed spread ({2 * spread * 100:.2f} AP): "
            + ("**goal met**" if within else ("auto is better" if diff > 0 else "**goal missed**"))
        )
    line = (
        f"- Auto vs tuned KD weights (`{AUTO_WEIGHTS_STUDENT}` against `{RAW_MAR}`, {auto.n} and {mar.n} seeds): "
        f"difference of means {diff:+.2f} AP, {verdict}."
    )
    paired = same_seed_gains(v.ap_by_seed(AUTO_WEIGHTS_STUDENT), v.ap_by_seed(RAW_MAR))
    if paired:
        line += f" Same seed: auto {paired.replace('the baseline', 'tuned')}."
    picked = {
        seed: rec["kd_weights"]["weights"]
        for seed, rec in sorted(v.recs.get(AUTO_WEIGHTS_STUDENT, {}).items())
        if rec.get("kd_weights")
    }
    tuned = next(iter(v.recs.get(RAW_MAR, {}).values()))["spec"]["distill"]
    fields = list(next(iter(picked.values()), {}))
    if picked:
        per_seed = "; ".join(f"s{seed}: {_weights_str(w)}" for seed, w in picked.items())
        line += f" Weights auto picked: {per_seed}; tuned: {_weights_str({k: tuned.get(k) for k in fields})}."
    seed, cal = next(
        (
            (seed, rec["kd_weights"]["calibration"])
            for seed, rec in sorted(v.recs.get(AUTO_WEIGHTS_STUDENT, {}).items())
            if (rec.get("kd_weights") or {}).get("calibration")
        ),
        (None, None),
    )
    if cal:  # where the tuned weights start, by the same measurement
        starts = ", ".join(
            f"{term} {tuned[field] * cal['raw'][term] / cal['classification']:.3g}x"
            for term, field in MARSpec.TERM_WEIGHTS.items()
            if term in cal["raw"] and isinstance(tuned.get(field), (int, float))
        )
        line += (
            f" By seed {seed}'s measurement the tuned weights start the terms at {starts} the "
            f"classification loss; auto starts each at {cal['target']}x."
        )
    return [line]


def _convergence(v: GroupView) -> list[str]:
    recs = v.recs.get("baseline", {})
    rises = []
    for seed, rec in sorted(recs.items()):
        hist = [h for h in rec.get("eval_history", []) if "AP" in h]
        iters = rec["spec"]["train"]["iterations"]
        at80 = [h for h in hist if h["step"] <= 0.8 * iters]
        if at80 and hist:
            rises.append((seed, at80[-1]["AP"], hist[-1]["AP"]))
    if not rises:
        return ["- Baseline converged: cannot say yet (no baseline run with an eval history)."]
    mean_rise = statistics.fmean(b - a for _, a, b in rises)
    shown = "; ".join(f"s{s}: {a * 100:.2f} -> {b * 100:.2f}" for s, a, b in rises)
    verdict = "yes" if mean_rise <= CONVERGED_RISE else "no"
    return [
        f"- Baseline converged (AP rises by at most {CONVERGED_RISE * 100:.1f} points over the last fifth "
        f"of the run): {verdict}, mean rise {mean_rise * 100:+.2f} AP (AP at 80% -> 100%: {shown})."
    ]


def _warm_start(v: GroupView) -> list[str]:
    """What continuing from the start adds, per seed, without KD (the group's "baseline") and
    with each KD method that ran, and whether the start was converged by that measure."""
    if not v.group.warm_start_from:
        return []
    gains = {label: v.gains_over_start(label) for label in v.labels}
    shown = [label for label in v.labels if gains[label]]
    if not shown:
        return [
            f"- Warm start (from `{v.group.warm_start_from}`'s baseline of each seed): no run with its start yet."
        ]
    train = student_run(v.preset, v.group, "baseline", 0).spec["train"]
    names = {"baseline": "no KD", "mar": "MAR"}

    def cell(seed: int) -> str:
        aps = (v.ap_by_seed(label).get(seed) for label in shown)
        ups = " / ".join("-" if ap is None else f"{ap * 100:.2f}" for ap in aps)
        return f"s{seed}: {record_ap(v.starts[seed]) * 100:.2f} -> {ups}"

    header = " / ".join("baseline (no KD)" if x == "baseline" else names.get(x, x) for x in shown)
    line = (
        f"- Warm start (from `{v.group.warm_start_from}`'s baseline of each seed; AP at the start -> "
        f"{header} after {train['iterations']} more steps at lr {train['lr']:g}): "
        f"{'; '.join(cell(s) for s in sorted(v.starts))}."
    )
    summaries = {label: Summary.of(list(gains[label].values())) for label in shown}
    for label, g in summaries.items():
        line += f" Mean gain over the start, {names.get(label, label)}: {g.signed()} AP (n={g.n})."
    if "baseline" in summaries:
        rose = summaries["baseline"].mean > CONVERGED_RISE
        line += (
            f" So the start was {'not ' if rose else ''}converged by the {CONVERGED_RISE * 100:.1f}-point "
            "bound of the convergence check" + (": more steps still lift it." if rose else ".")
        )
    return [line]


def _losses(v: GroupView) -> list[str]:
    rec = next(iter(sorted(v.recs.get("mar", {}).items())), (None, None))[1]
    if rec is None or not rec.get("losses"):
        return []
    out = []
    for phase in ("early", "late"):
        vals = rec["losses"].get(phase, {})
        shown = ", ".join(
            f"{k.split('/', 1)[1]} {vals[k]:.3g}" for k in MAR_LOSS_KEYS if vals.get(k) is not None
        )
        steps = rec["losses"].get("steps", {}).get(phase, [])
        out.append(f"  - {phase} (steps {'-'.join(map(str, steps))}): {shown}")
    return [
        f"- MAR loss terms (seed {rec['seed']}, weighted KD terms as logged, the early ones inside the KD "
        "warm-up; mean over the first / last "
        "fifth "
        f"of the logged steps):",
        *out,
    ]


def _run_budget(v: GroupView) -> list[str]:
    """Whether the student runs kept to the preset's per-run wall-time budget, overall and by the
    number of torch threads a run had (two 1-thread runs share a 2-core machine; a 2-thread run
    has it to itself), with the load when each run finished."""
    budget = v.preset.run_budget_minutes
    recs = [(label, seed, r) for label, by_seed in v.recs.items() for seed, r in by_seed.items()]
    if budget is None or not recs:
        return []
    over = [t for t in recs if t[2]["wall_seconds"] > budget * 60]
    head = "every run kept to it" if not over else f"{len(over)} of {len(recs)} runs over it"
    by_threads: dict[Any, list[tuple[str, int, dict[str, Any]]]] = {}
    for t in recs:
        by_threads.setdefault(t[2].get("machine", {}).get("torch_threads"), []).append(t)
    parts = []
    for threads, group in sorted(by_threads.items(), key=lambda kv: str(kv[0])):
        label, seed, longest = max(group, key=lambda t: t[2]["wall_seconds"])
        n_over = sum(r["wall_seconds"] > budget * 60 for _, _, r in group)
        loads = [load for _, _, r in group if (load := r.get("machine", {}).get("load_avg_1m")) is not None]
        load = f", 1-minute load at the end {min(loads):.1f}-{max(loads):.1f}" if loads else ""
        parts.append(
            f"{threads or '?'} torch thread(s) a run: {n_over} of {len(group)} over, longest "
            f"{label} s{seed} {longest['wall_seconds'] / 60:.1f} min{load}"
        )
    return [f"- Run budget ({budget:g} min a run): {head}; by threads: {'; '.join(parts)}."]


def _group_section(v: GroupView) -> list[str]:
    preset, group = v.preset, v.group
    if not v.recs and v.teacher is None:
        choice = f" (peers: {v.choice.source})" if v.choice is not None else ""
        return [
            f"### {group.title} (`{group.name}`)",
            "",
            f"Nothing run yet: teacher missing; missing runs: all {len(v.labels) * len(preset.seeds)} "
            f"(students {', '.join(v.labels)}{choice}; seeds {', '.join(map(str, preset.seeds))}). "
            f"Student {_model_str(group.student_model)}, teacher "
            f"{_model_str(preset.teachers[group.teacher].model)}; "
            f"{_train_str(student_run(preset, group, 'baseline', 0).spec['train'])}.",
            "",
        ]
    tdef = preset.teachers[group.teacher]
    t_ap = v.teacher_ap()
    rounding = (
        f" after float16 rounding (the weights students distil from; {record_ap(v.teacher) * 100:.2f} before)"
        if v.published and v.teacher
        else " (not published yet: float32 weights)"
    )
    teacher_line = (
        (
            f"{t_ap * 100:.2f} AP (AP50 {v.teacher_ap('AP50') * 100:.2f}){rounding}, "
            f"{_mparams(v.teacher['params']['model'])} params, "
            f"trained {_train_str(v.teacher['spec']['train'])} "
            f", in {v.teacher['wall_seconds'] / 60:.1f} min"
        )
        if v.teacher
        else "not trained yet"
    )
    lines = [
        f"### {group.title} (`{group.name}`)",
        "",
        f"- Student: {_model_str(group.student_model)}; "
        f"schedule: {_train_str(student_run(preset, group, 'baseline', 0).spec['train'])}; "
        f"dataset `{preset.datasets[group.data].logical_path}`.",
        f"- Teacher: {_model_str(tdef.model)}: {teacher_line}.",
    ]
    if v.choice is not None:
        lines.append(f"- Peers in this group: {', '.join(v.choice.peers)} ({v.choice.source}).")
    lines += ["", *_student_table(v), "", *_verdicts(v)]
    if group.check_convergence:
        lines += _convergence(v)
    lines += _warm_start(v)
    lines += _losses(v)
    lines += _run_budget(v)
    missing = v.missing()
    lines.append(f"- Missing runs: {'; '.join(missing)}." if missing else "- Missing runs: none.")
    return lines + [""]


def _machines(recs: list[dict[str, Any]]) -> list[str]:
    seen: dict[tuple, int] = {}
    loads = []
    for r in recs:
        m = r.get("machine", {})
        k = (
            m.get("cpu_model"),
            m.get("cores"),
            m.get("torch"),
            m.get("torchvision"),
            m.get("gpu"),
            m.get("memory_gib"),
            m.get("torch_threads"),
        )
        seen[k] = seen.get(k, 0) + 1
        if m.get("load_avg_1m") is not None:
            loads.append(m["load_avg_1m"])
    lines = [
        f"- {cpu}, {cores} cores, {mem} GiB RAM, torch {tv}, torchvision {tvv}"
        f"{', GPU ' + gpu if gpu else ', no GPU'}, {threads} torch thread(s) per run: {n} result file(s)"
        for (cpu, cores, tv, tvv, gpu, mem, threads), n in seen.items()
    ]
    if loads:
        lines.append(
            f"- 1-minute load average when the runs finished: {min(loads):.1f} to {max(loads):.1f} "
            "(a load above the core count means the machine was shared and times are inflated)"
        )
    return lines


def _quality_section(store: ResultStore, preset: Preset) -> list[str]:
    recs = list(store.records(preset=preset.name))
    views = [GroupView(store, preset, g) for g in preset.groups]
    runs_done = sum(v.runs_cached for v in views)
    runs_total = sum(v.runs_planned for v in views)
    status = [
        [
            f"`{v.group.name}`",
            v.group.title,
            "yes" if v.teacher else "no",
            f"{v.runs_cached} / {v.runs_planned}",
        ]
        for v in views
    ]
    lines = [
        f"## Quality: preset `{preset.name}`",
        "",
        f"{preset.description}. Seeds: "
        f"{', '.join(map(str, preset.seeds))}. Student runs cached: {runs_done} of {runs_total}. "
        "AP is COCO AP x 100 on the validation split, from the final weights; std is the sample std over "
        "seeds; † marks a mean that includes a resumed run (its wall time counts the resumed part only).",
        "",
    ]
    lines += [*table(["group", "what", "teacher trained", "student runs cached"], status), ""]
    if recs:
        lines += ["Machines:", *_machines(recs), ""]
    for v in views:
        lines += _group_section(v)
    lines += search_section(store, preset)
    return lines


def _perf_section(store: ResultStore, presets: list[str]) -> list[str]:
    """Per preset, each part from the newest ``perf-<preset>-*.json`` that holds it."""
    lines = ["## Speed (`mar bench perf`)", ""]
    for name in presets:
        newest = store.newest_perf_parts(name)
        if not newest:
            lines += [f"### preset `{name}`", "", f"Not measured yet (`mar bench perf --preset {name}`).", ""]
            continue
        lines += [f"### preset `{name}`", ""]
        for part in PERF_PARTS:
            if part not in newest:
                lines += [f"#### {part}", "", "Not measured yet.", ""]
                continue
            fname, data, result = newest[part]
            m = data.get("machine", {})
            lines += [
                f"#### {part}",
                "",
                f"From `{fname}`: `{data.get('command')}`, {data.get('started_at')}, "
                f"on {m.get('cpu_model')}, "
                f"{m.get('cores')} cores, torch {m.get('torch')}; 1-minute load average "
                f"{m.get('load_avg_1m')} at the start, {data.get('machine_after', {}).get('load_avg_1m')} at "
                f"the end; {result.get('seconds', '?')} s to measure.",
                "",
                *FORMATTERS[part](result),
                "",
            ]
    return lines


def _tune_section(store: ResultStore, presets: list[str]) -> list[str]:

    lines = [
        "## Tuning: what was tried (`mar bench tune`)",
        "",
        "One MAR hyper-parameter changed at a time from the defaults, seed 0, on the synthetic short "
        "group's schedule; compared with the group's default MAR and baseline runs of the same seed. "
        "One seed: differences below the group's seed spread are noise.",
        "",
    ]
    for name in presets:
        preset = get_preset(name)
        group = tune_group(preset)
        ref_mar = store.get(student_run(preset, group, RAW_MAR, TUNE_SEED).key)
        ref_base = store.get(student_run(preset, group, "baseline", TUNE_SEED).key)
        runs = plan_tune(preset)
        done = [(r, store.get(r.key)) for r in runs]
        if not any(rec for _, rec in done):
            lines += [
                f"Preset `{name}`: no tuning run yet ({len(runs)} grid points; "
                f"`mar bench tune --preset {name}`).",
                "",
            ]
            continue
        rows = []
        for r, rec in done:
            ap = record_ap(rec)
            rows.append(
                [
                    r.label,
                    f"`{json.dumps(r.extra['params'])}`",
                    "-" if ap is None else f"{ap * 100:.2f}",
                    "-" if ap is None or ref_mar is None else f"{(ap - record_ap(ref_mar)) * 100:+.2f}",
                    "-" if ap is None or ref_base is None else f"{(ap - record_ap(ref_base)) * 100:+.2f}",
                    "missing" if rec is None else _mean_wall([rec]),
                ]
            )

        now = MARSpec(feature_norm="none").with_weight_defaults(two_stage=False)
        defaults = ", ".join(f"{k} {json.dumps(getattr(now, k))}" for k in GRID_BASE)
        changed = [k for k in GRID_BASE if getattr(now, k) != GRID_BASE[k]]
        lines += [
            f"Raw MAR's defaults now (`MARSpec` with `feature_norm: none`, one-stage): {defaults}; "
            + (
                f"changed from the grid's base: {', '.join(changed)}."
                if changed
                else "the grid's base point."
            ),
            "",
            f"Preset `{name}`, group `{group.name}`: default raw MAR (`{RAW_MAR}`) seed 0 "
            f"{'-' if ref_mar is None else f'{record_ap(ref_mar) * 100:.2f}'} AP, baseline seed 0 "
            f"{'-' if ref_base is None else f'{record_ap(ref_base) * 100:.2f}'} AP.",
            "",
            *table(["point", "distill overrides", "AP", f"vs {RAW_MAR}", "vs baseline", "wall time"], rows),
            "",
            *_tune_outcome(done, ref_mar, GroupView(store, preset, group).summary(RAW_MAR).std),
        ]
    return lines


def _tune_outcome(
    done: list[tuple[Any, dict[str, Any] | None]], ref_mar: dict[str, Any] | None, mar_std: float | None
) -> list[str]:
    """The best point run, whether it is today's default, and how many points lie too close to it
    (within twice MAR's seed spread) for one seed to tell apart."""
    ran = [(r, record_ap(rec)) for r, rec in done if rec is not None]
    best, best_ap = max(ran, key=lambda t: t[1])
    is_default = ref_mar is not None and best.key == ref_mar["key"]
    line = f"- Best of the {len(ran)} points run: `{best.label}` ({best_ap * 100:.2f} AP), " + (
        "the current default." if is_default else "not the current default."
    )
    if mar_std is not None:
        close = [r.label for r, ap in ran if r is not best and best_ap - ap <= 2 * mar_std]
        line += (
            f" Within twice MAR's seed spread of it ({2 * mar_std * 100:.2f} AP): "
            + (", ".join(f"`{x}`" for x in close) if close else "no other point")
            + "."
        )
    return [line, ""]


def _commands(store: ResultStore, presets: list[str]) -> list[str]:
    used = sorted(
        {r["command"] for r in store.records() if r.get("command") and r.get("preset") in presets}
        | {json.loads(f.read_text()).get("command", "") for f in store.perf_files()} - {""}
    )
    lines = ["## Commands", "", "```bash"]
    for name in presets:
        lines += [
            f"mar bench quality --preset {name}            # every group; cached runs are skipped",
            f"mar bench quality --preset {name} --list     # what is cached, what is missing",
            f"mar bench perf --preset {name}",
            f"mar bench tune --preset {name}",
            f"mar bench equal-tune --preset {name}            # one grid for every method; then --picks",
            f"mar bench calibrate --preset {name} --group GROUP   # KD terms vs the classification loss",
            f"mar bench diagnose --preset {name} --group GROUP    # why the mask-guided loss is flat",
        ]
    lines += [
        "mar bench report                           # rewrites this file from benchmarks/results/",
        "```",
        "",
    ]
    if used:
        renamed = ", ".join(f"`{old}` (now `{new}`)" for old, new in RENAMED_LABELS.items())
        lines += [
            "Commands that produced the results below, as recorded. Labels renamed on 2026-12-02, when "
            f"MAR's one-stage default became the standardised form (same runs, same keys), in the "
            f"one-stage groups: {renamed}; a command from before then names the old label. On Faster "
            "R-CNN `mar` kept its meaning (the raw form, still the two-stage default).",
            "",
            "```bash",
            *used,
            "```",
            "",
        ]
    return lines


def render_report(store: ResultStore, presets: list[str] | None = None) -> str:
    """The whole BENCHMARKS.md text for ``presets`` (default: cpu, gpu)."""
    names = list(presets or REPORTED_PRESETS)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    try:
        where = store.root.resolve().relative_to(REPO_ROOT)
    except ValueError:
        where = store.root
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `mar bench report` from the result files in `{where}/` ({now}). Do not edit: "
        "every number below is read from a result file, and runs not made yet are listed as missing.",
        "",
        "Quality: MAR against a baseline student (no teacher), MAR ablations and the peer methods "
        "(feature MSE, FGD, MGD, PKD, CWD at the FPN; PKD and CWD at the classification tower; logit KD; "
        "CrossKD) in one harness, and an equal tuning budget for every method; same schedule and budget for every student of a "
        "group, several seeds. Speed: what distillation costs per step, the relation loss's Gram form "
        "against "
        "the naive N x N form, mask building, API latency.",
        "",
    ]
    lines += glance_section(store, names)
    lines += _commands(store, names)
    for name in names:
        lines += _quality_section(store, get_preset(name))
    lines += _perf_section(store, names)
    lines += dataset_check_section(store.root)
    lines += data_pipeline_section(store.root)
    lines += slow_clients_section(store.root)
    lines += soak_section(store.root)
    lines += _calibration_section(store, names)
    lines += diagnose_section(store.root, names)
    lines += equal_tune_section(store, names)
    lines += _tune_section(store, names)
    return "\n".join(lines).rstrip() + "\n"


def _calibration_section(store: ResultStore, presets: list[str]) -> list[str]:
    """The ``calibrate-<preset>-<group>.json`` files: KD term sizes against the classification loss."""

    files = [f for name in presets for f in sorted(store.root.glob(f"calibrate-{name}-*.json"))]
    if not files:
        return []
    lines = [
        "## Loss calibration (`mar bench calibrate`)",
        "",
        "The method's rule: each KD term starts between 0.1x and 1x the classification loss. The peers' "
        "weights in the quality groups are set by it (each term at 0.5x, once, with the synthetic "
        "teacher); MAR's rows show its current defaults, which the tuning grid (below) chose.",
        "",
    ]
    for f in files:
        result = json.loads(f.read_text())
        lines += [f"From `{f.name}`: `{result.get('command', '')}`.", "", *format_calibration(result), ""]
    return lines


def write_report(results_dir: Path | str, out: Path | str, presets: list[str] | None = None) -> Path:
    """Render the report from ``results_dir`` and write it to ``out``."""
    out = Path(out)
    out.write_text(render_report(ResultStore(results_dir), presets))
    return out
