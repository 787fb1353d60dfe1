"""``mar queue`` (the queue per pool, your waiting jobs with position and ETA) and ``mar quota``
(a project's limits and use; an admin key sets them), over the HTTP API."""

from __future__ import annotations

import argparse

from api.client_cmd import client_flags, make_client
from mar_core.spec_limits import escape_controls


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def cmd_queue(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        view = client.queue()
    for pool in view.pools:
        rate = f", {pool.seconds_per_step:.2f} s/step" if pool.seconds_per_step else ""
        print(
            f"pool {pool.pool}: {pool.workers} worker slot(s), {pool.running} running, {pool.waiting} waiting{rate}"
        )
        if pool.note:
            print(f"  note: {pool.note}")
        for j in pool.jobs:
            held = f"  held: {escape_controls(j.held)}" if j.held else ""
            print(
                f"  #{j.position:<4}{j.id:<34}{j.project:<16}{j.priority:<8}eta {_eta(j.eta_seconds)}{held}"
            )
    return 0


def cmd_quota(args: argparse.Namespace) -> int:
    limits = {
        name: (None if value < 0 else value)
        for name, value in (
            ("max_running", args.max_running),
            ("max_queued", args.max_queued),
            ("gpu_hours_per_day", args.gpu_hours_per_day),
        )
        if value is not None
    }
    with make_client(args) as client:
        q = client.set_quota(args.project, **limits) if limits else client.get_quota(args.project)

    def show(v: float | None) -> str:
        return "none" if v is None else f"{v:g}"

    print(
        f"project {q.project}: max_running {show(q.max_running)}, max_queued {show(q.max_queued)}, "
        f"gpu_hours_per_day {show(q.gpu_hours_per_day)}"
    )
    u = q.usage
    print(
        f"using: {u.running} running, {u.queued} queued, {u.gpu_hours_per_day:g} GPU-hours in the last 24 h"
    )
    return 0


def register(add) -> None:
    """Add ``queue`` and ``quota``."""
    p = add("queue")
    client_flags(p)
    p.set_defaults(handler=cmd_queue)

    p = add("quota")
    p.add_argument("project")
    p.add_argument("--max-running", type=int, default=None, help="jobs running at once (-1: no limit)")
    p.add_argument("--max-queued", type=int, default=None, help="jobs waiting at once (-1: no limit)")
    p.add_argument(
        "--gpu-hours-per-day", type=float, default=None, help="GPU-hours over a rolling 24 h (-1: no limit)"
    )
    client_flags(p)
    p.set_defaults(handler=cmd_quota)
