"""The long-running service parts: ``mar worker`` (a Celery worker for the job queue, one per GPU)
and ``mar reaper`` (re-queues jobs whose worker stopped heartbeating)."""

from __future__ import annotations

import argparse
import logging
import os

from api.settings import get_settings
from mar_core.cli.argtypes import positive_float, positive_int
from mar_core.errors import SpecError
from mar_core.parent_watch import stop_with_parent_from_env
from worker.celery_app import app
from worker.procs import stop_event_on_signals
from worker.reaper import run_reaper

logger = logging.getLogger(__name__)


def register(add) -> None:
    """Add ``worker`` and ``reaper``; ``add(name)`` returns a command's parser."""
    w = add("worker")
    w.add_argument("--concurrency", type=positive_int, default=1, help="jobs at a time (default 1)")
    w.add_argument("--hostname", default=None, help="Celery node name (default mar[-gpuN]-PID@host)")
    w.add_argument("--loglevel", default="INFO")
    w.add_argument(
        "--pool",
        default=None,
        help="the worker pool it serves (one of MAR_POOLS; default: MAR_WORKER_POOL, else the first)",
    )
    w.set_defaults(handler=_worker)

    r = add("reaper")
    r.add_argument("--interval", type=positive_float, default=5.0, help="seconds between passes")
    r.add_argument(
        "--stale-after",
        type=positive_float,
        default=None,
        help="re-nudge a job queued this long with no message (default max(30, 3 x interval))",
    )
    r.set_defaults(handler=_reaper)


def worker_hostname(pid: int | None = None) -> str:
    """``mar-gpu{N}-{pid}@%h`` when ``CUDA_VISIBLE_DEVICES`` names GPUs, else ``mar-{pid}@%h``."""
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    base = f"mar-gpu{gpus.replace(',', '-')}" if gpus and gpus != "-1" else "mar"
    return f"{base}-{pid or os.getpid()}@%h"


def _worker(args: argparse.Namespace) -> int:
    stop_with_parent_from_env("worker")
    if args.pool is not None:
        os.environ["MAR_WORKER_POOL"] = args.pool  # what this process's settings say from now on
        get_settings.cache_clear()
    try:
        settings = get_settings()
    except ValueError as e:
        raise SpecError(f"--pool: {e}", "pool") from e
    argv = [
        "worker", "--queues", settings.pool_queue(settings.my_pool), "--concurrency", str(args.concurrency), "--pool", "threads",
        "--hostname", args.hostname or worker_hostname(), "--loglevel", args.loglevel,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    app.worker_main(argv)
    return 0


def _reaper(args: argparse.Namespace) -> int:
    stop_with_parent_from_env("reaper")
    run_reaper(args.interval, stale_after=args.stale_after, stop=stop_event_on_signals())
    return 0
