"""Markdown tables of the perf results: printed by ``mar bench perf``, pasted into BENCHMARKS.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.markdown import table as md_table


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def format_steps(r: dict[str, Any]) -> list[str]:
    if "skipped" in r:
        return [f"Skipped: {r['skipped']}."]
    med, ratio = r["median_s"], r["ratios"]
    cpu, ratio_cpu = r.get("median_cpu_s"), r.get("ratios_cpu")
    s, t = r["student_model"], r["teacher_model"]
    lines = [
        f"Training step, one batch of {r['batch_size']} synthetic images at {r['image_size']} px, "
        f"median of {r['repeats']} round-robin repeats, {r['threads']} torch thread(s). Student "
        f"{s['arch']} {s['backbone']}-FPN{s['fpn_channels']} ({r['params']['student'] / 1e6:.1f} M params), "
        f"teacher {t['backbone']}-FPN{t['fpn_channels']} ({r['params']['teacher'] / 1e6:.1f} M params). "
        "Wall time swings with the machine's load; the process CPU time (one thread) does not.",
        "",
    ]
    names = [
        ("student-only training step", "student_step"),
        ("teacher forward (FPN + cls tower)", "teacher_forward"),
        ("MAR step (student + teacher + KD losses)", "mar_step"),
        ("MAR step, teacher in bf16 (`distill.teacher_precision`)", "mar_step_bf16_teacher"),
        ("MAR step, teacher outputs from the cache (`distill.teacher_cache`)", "mar_step_cached_teacher"),
        ("student-only training step in bf16 (`train.cpu_bf16`)", "student_step_bf16"),
        (
            "MAR step in bf16, teacher outputs from the cache (the demo's form)",
            "mar_step_cached_teacher_bf16",
        ),
    ]
    rows = []
    for label, key in names:
        if key not in med:  # results of an earlier version
            continue
        rel = "1.00" if key == "student_step" else f"{med[key] / med['student_step']:.2f}"
        row = [label, _ms(med[key]), rel]
        if cpu:
            row += [
                _ms(cpu[key]),
                "1.00" if key == "student_step" else f"{cpu[key] / cpu['student_step']:.2f}",
            ]
        rows.append(row)
    header = ["what", "wall ms", "x student (wall)"] + (["CPU ms", "x student (CPU)"] if cpu else [])
    lines += md_table(header, rows)
    overhead = f"**{ratio_cpu['distillation_overhead']:.2f}** (CPU time), " if ratio_cpu else ""
    lines += [
        "",
        f"**Distillation overhead beyond the teacher forward**: (t_mar - t_student - t_teacher) / "
        f"t_student = {overhead}{ratio['distillation_overhead']:.2f} (wall time).",
    ]
    if ratio["distillation_overhead"] < 0:
        lines += [
            "",
            "A negative wall-time overhead is impossible work-wise: the machine's load changed between "
            "the timed steps; read the CPU-time column.",
        ]
    if r.get("last_mar_losses"):
        shown = ", ".join(f"{k} {v:.3g}" for k, v in r["last_mar_losses"].items())
        lines += [
            "",
            f"Loss terms of the last timed MAR step (untrained models, KD at full weight): {shown}.",
        ]
    return lines


def format_relation(r: dict[str, Any]) -> list[str]:
    rows = r["rows"]
    sides = sorted({x["side"] for x in rows})
    by = {(x["side"], x["form"]): x for x in rows}
    table = []
    for side in sides:
        g, n = by.get((side, "gram")), by.get((side, "naive"))
        table.append(
            [
                f"{side}x{side}",
                side * side,
                _ms(g["time_s"]) if g else "-",
                f"{g['peak_rss_mb']:.1f}" if g else "-",
                _ms(n["time_s"]) if n else "not run (N x N too large)",
                f"{n['peak_rss_mb']:.1f}" if n else "-",
                f"{n['time_s'] / g['time_s']:.1f}" if g and n else "-",
            ]
        )
    lines = [
        f"Relation loss, one level, batch 1, C = {r['channels']}, forward + backward, "
        f"{r.get('threads') or 'default'} torch thread(s), fastest run; peak RSS rise in "
        f"MB (one fresh process per case); naive only while one N x N float32 matrix is under "
        f"{r['naive_limit_bytes'] / 1024**2:.0f} MiB.",
        "",
    ]
    return lines + md_table(
        ["grid", "N", "Gram ms", "Gram MB", "naive ms", "naive MB", "naive / Gram time"], table
    )


def format_masks(r: dict[str, Any]) -> list[str]:
    table = [
        [
            f"{x['image_side']} px ({x['feat'][0]}x{x['feat'][1]})",
            x["batch"],
            x["boxes_per_image"],
            _ms(x["vectorised_s"]),
            _ms(x["loop_s"]),
            f"{x['speedup']:.1f}",
            f"{x['max_abs_diff']:.1g}",
        ]
        for x in r["rows"]
    ]
    lines = [
        f"Multi-value mask (rings, scale_norm) of the stride-{r['stride']} level, median ms, "
        f"{r.get('threads') or 'default'} torch thread(s).",
        "",
    ]
    return lines + md_table(
        [
            "image (grid)",
            "batch",
            "boxes / image",
            "vectorised ms",
            "per-box loop ms",
            "speed-up",
            "max abs diff",
        ],
        table,
    )


def _connect_note(run: dict[str, Any]) -> str:
    """``; connect p50 X / max Y ms`` for a paced run that opened its connections first."""
    c = run.get("connect")
    return f"; connect p50 {c['p50_ms']} / max {c['max_ms']} ms" if c else ""


def format_api(r: dict[str, Any]) -> list[str]:
    table = []
    for backend in ("sqlite", "postgresql"):
        b = r.get(backend, {})
        if "skipped" in b:
            table.append([backend, "-", "-", "-", "-", "-", "-", "-", f"skipped: {b['skipped']}"])
            continue
        for run in b.get("runs", []):
            table.append(
                [
                    backend,
                    run.get("server", "1 process"),
                    run["endpoint"],
                    run["clients"],
                    run["requests"],
                    run["p50_ms"],
                    run["p95_ms"],
                    run["p99_ms"],
                    f"{run['throughput_rps']} req/s, {run['errors']} errors" + _connect_note(run),
                ]
            )
    lines = [
        "API latency: `create_app(settings)` under uvicorn on 127.0.0.1 (the server config says how "
        "many worker processes and whether the metrics cache is on), Celery nudge stubbed; each "
        "client thread has its own connection and runs on the same machine. Closed loop: a client "
        "sends its next request when the last is answered, so with N clients p99 >= N / throughput. "
        "Paced: each client starts a request at a fixed interval (the offered rate), on a "
        "connection it opened before (a `GET /healthz` a client, spread over one interval, as the "
        "SDK keeps its connection; that first request's p50 / max is given apart as `connect`).",
        "",
    ]
    return (
        lines
        + md_table(
            [
                "database",
                "server",
                "endpoint",
                "clients",
                "requests",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "throughput",
            ],
            table,
        )
        + ["", *api_target_verdicts(r)]
    )


def _best(runs: list[dict[str, Any]], want: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    chosen = [run for run in runs if want(run) and run["errors"] == 0 and run["p99_ms"] is not None]
    return min(chosen, key=lambda run: run["p99_ms"], default=None)


def _verdict(run: dict[str, Any] | None, target_ms: float, what: str) -> str:
    if run is None:
        return f"- {what}: not measured."
    p99 = run["p99_ms"]
    met = (
        f"**met** ({p99} ms)" if p99 <= target_ms else f"**not met**: {p99} ms, {p99 - target_ms:.0f} ms over"
    )
    return f"- {what} (target p99 <= {target_ms:g} ms): {met}; best of: {run['server']}, {run['endpoint']}."


def api_target_verdicts(r: dict[str, Any]) -> list[str]:
    """Issue 17's two latency targets, judged on the best server config measured."""
    lines = ["Targets (the best server config measured for each):"]
    sqlite, pg = r.get("sqlite", {}).get("runs", []), r.get("postgresql", {}).get("runs", [])
    for backend, runs in (("SQLite", sqlite), ("PostgreSQL", pg)):
        full = _best(runs, lambda run: run["endpoint"].startswith("GET metrics (") and run["clients"] == 8)
        lines.append(_verdict(full, 100, f"{backend}: GET metrics, every point, 8 clients"))
    closed = _best(pg, lambda run: run["endpoint"] == "POST /jobs" and run["clients"] == 50)
    lines.append(_verdict(closed, 50, "PostgreSQL: POST /jobs, 50 clients, closed loop"))
    if closed is not None and closed["throughput_rps"]:
        floor = 50 / closed["throughput_rps"] * 1000
        lines.append(
            f"  Closed loop, 50 clients can not wait less on average than 50 / throughput = {floor:.0f} ms "
            f"at the {closed['throughput_rps']} req/s this machine (clients included) serves."
        )
    paced = _best(pg, lambda run: run["endpoint"].startswith("POST /jobs, paced") and run["clients"] == 50)
    lines.append(_verdict(paced, 50, "PostgreSQL: POST /jobs, 50 clients, paced"))
    return lines


def format_contention(r: dict[str, Any]) -> list[str]:
    if "skipped" in r:
        return [f"skipped: {r['skipped']}"]
    table = [
        [
            row["setting"],
            row["idle_s"],
            row["busy_s"],
            f"{row['slowdown']}x",
            f"{row['idle_over_best_idle']}x",
            f"{row['busy_over_best_idle']}x",
        ]
        for row in r["rows"]
    ]
    lines = [
        f"Training step of the student ({r['student']['arch']} {r['student']['backbone']}-FPN"
        f"{r['student']['fpn_channels']}, {r['image_size']} px, batch {r['batch']}) on {r['cores']} cores, "
        "median of the timed steps, idle and beside one busy-loop process; each setting in a fresh process.",
        "",
    ]
    worst = {row["setting"]: max(row["idle_over_best_idle"], row["busy_over_best_idle"]) for row in r["rows"]}
    chosen = min(worst, key=worst.get)
    idle_best = min(r["rows"], key=lambda row: row["idle_s"])["setting"]
    return (
        lines
        + md_table(
            ["setting", "idle s", "busy s", "slowdown", "idle vs best idle", "busy vs best idle"], table
        )
        + [
            "",
            f"Smallest worst case (idle or busy, against the best idle step): **{chosen}** "
            f"({worst[chosen]}x); the embedded stack (`mar up`) trains with cores - 1 threads "
            "(`MAR_TRAINING_THREADS`, `worker/stack.py`). Fastest on an idle machine: "
            f"{idle_best}, what the benchmarks use: they run alone on the machine.",
        ]
    )


FORMATTERS = {
    "steps": format_steps,
    "steps_frcnn": format_steps,
    "relation": format_relation,
    "masks": format_masks,
    "api": format_api,
    "contention": format_contention,
}


def format_part(part: str, result: dict[str, Any]) -> list[str]:
    return [f"### {part}", "", *FORMATTERS[part](result), "", f"({result.get('seconds', '?')} s to measure)"]
