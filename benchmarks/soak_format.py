"""The soak's result as Markdown: the figures, the checks, and BENCHMARKS.md's "Soak" section
(the newest ``soak-*.json`` of the results folder)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.markdown import table

CHECK_NAMES = {
    "succeeded": "every job ended `succeeded`",
    "one_value_per_step": "one metric value per step (steps 1..iterations, `eval/*` at the last step)",
    "no_overlap": "no job ran twice at once (status events, process events, processes seen alive)",
}


def _sharing_rows(result: dict[str, Any]) -> list[list[Any]]:
    """Two projects' rows (soaks from before projects have none)."""
    share = result.get("fair_share")
    if not share:
        return []
    jobs = result["jobs"]
    counts = {p: sum(1 for j in jobs if j.get("project") == p) for p in sorted(share["share"])}
    high = sum(1 for j in jobs if j.get("priority") == "high")
    parts = ", ".join(
        f"{p} {share['share'][p]:.0%} ({share['worker_seconds'][p] / 60:.1f} worker-min, {counts[p]} jobs)"
        for p in sorted(share["share"])
        if share["share"][p] is not None
    )
    return [
        ["projects: jobs submitted (a first, then b)", ", ".join(f"{p} {n}" for p, n in counts.items())],
        ["high-priority jobs / preemptions", f"{high} / {result.get('preemptions', 0)}"],
        [f"fair share: each project's share of worker time while both had jobs queued "
         f"({share['window_seconds'] / 60:.1f} min)", parts or "-"],
    ]  # fmt: skip


def format_soak(result: dict[str, Any]) -> list[str]:
    cfg, v = result["config"], result["verdict"]
    lo, hi = cfg["kill_every"]
    restarts = result.get("broker_restarts", [])
    restart = (
        f"after {restarts[0]['jobs_ended_before']} jobs had ended, down "
        f"{restarts[0]['up_at'] - restarts[0]['killed_at']:.1f} s"
        if restarts
        else "none"
    )
    t = result["spec"]["train"]
    rows = [
        ["jobs submitted / succeeded", f"{result['jobs_submitted']} / {v['succeeded']}"],
        ["workers", cfg["workers"]],
        [f"worker kills (SIGKILL of the process group every {lo:g}-{hi:g} s)", len(result.get("kills", []))],
        ["broker restarts (redis-server SIGKILLed, no persistence)", f"{len(restarts)} ({restart})"],
        ["attempts per job: max / mean / jobs retried",
         f"{v['attempts']['max']} / {v['attempts']['mean']:.2f} / {v['attempts']['jobs_retried']}"],
        ["training processes seen alive (sampled every "
         f"{result['processes']['interval_s']} s, {result['processes']['samples']} samples)", v["processes_seen"]],
        ["of them alive past their attempt after writing their result (exiting, not running): count / "
         "longest", f"{v['lingering']['processes']} / {v['lingering']['max_s']:.2f} s"],
        *_sharing_rows(result),
        ["wall time", f"{result['wall_seconds'] / 60:.1f} min"],
        ["jobs per minute", f"{result['jobs_per_minute']:.2f}"],
    ]  # fmt: skip
    checks = [
        [CHECK_NAMES[name], "pass" if ok else f"**FAIL** ({v['failure_counts'][name]})"]
        for name, ok in v["checks"].items()
    ]
    return [
        f"Tiny jobs ({result['spec']['model']['arch']} {result['spec']['model']['backbone']}, "
        f"{t['iterations']} iterations of batch {t['batch_size']} at 64 px, a checkpoint every "
        f"{t['checkpoint_every']} steps, max_attempts {result['spec']['max_attempts']}) through the API, "
        f"PostgreSQL and a private redis-server, {cfg['workers']} workers, lease {cfg['lease_seconds']:g} s "
        f"(heartbeat {cfg['heartbeat_seconds']:g} s), reaper every {cfg['reaper_interval']:g} s.",
        "",
        *table(["figure", "value"], rows),
        "",
        *table(["check", "result"], checks),
    ]


def soak_section(results: Path) -> list[str]:
    """BENCHMARKS.md's section: the newest ``soak-*.json`` in ``results``."""
    files = sorted(Path(results).glob("soak-*.json"))
    lines = ["## Soak: worker kills and a broker restart (`mar bench soak`)", ""]
    if not files:
        return [*lines, "Not run yet (`mar bench soak`).", ""]
    result = json.loads(files[-1].read_text())
    m = result.get("machine", {})
    again = result.get("reverified")
    note = (
        [
            "",
            f"Verdict recomputed {again['at']}: {again['why']} First verdict: "
            + ", ".join(
                f"{k} {'pass' if ok else 'FAIL'}" for k, ok in again["first_verdict"]["checks"].items()
            )
            + ".",
        ]
        if again
        else []
    )
    return [
        *lines,
        f"From `{files[-1].name}`: `{result.get('command')}`, {result.get('started_at')}, on "
        f"{m.get('cpu_model')}, {m.get('cores')} cores; 1-minute load average {m.get('load_avg_1m')} "
        f"at the start, {result.get('machine_after', {}).get('load_avg_1m')} at the end.",
        "",
        *format_soak(result),
        *note,
        "",
    ]
