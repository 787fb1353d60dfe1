"""The stack commands: ``mar worker``, ``mar reaper``, ``mar up``, ``mar demo``.

``mar up`` is the embedded default: SQLite and kombu's ``filesystem://`` transport under the
state folder (unless ``DATABASE_URL`` / ``BROKER_URL`` point elsewhere), migrations run, then the
API, one worker and the reaper as child processes; Ctrl-C (or SIGTERM) stops them all.
Heavy imports (Celery, SQLAlchemy, torch) happen inside the handlers.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

from mar_core.cli.argtypes import positive_int
from mar_core.parent_watch import stop_with_parent_from_env

logger = logging.getLogger(__name__)


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {v}")
    return v



def register(sub: argparse._SubParsersAction) -> None:
    """Add ``worker``, ``reaper``, ``up`` and ``demo``."""
    w = sub.add_parser("worker", help="run a Celery worker for the job queue (one per GPU)")
    w.add_argument("--concurrency", type=positive_int, default=1, help="jobs at a time (default 1)")
    w.add_argument("--hostname", default=None, help="Celery node name (default mar[-gpuN]-PID@host)")
    w.add_argument("--loglevel", default="INFO")
    w.set_defaults(handler=_worker)

    r = sub.add_parser("reaper", help="re-queue jobs whose worker stopped heartbeating")
    r.add_argument("--interval", type=_positive_float, default=5.0, help="seconds between passes")
    r.add_argument("--stale-after", type=_positive_float, default=None,
                   help="re-nudge a job queued this long with no message (default max(30, 3 x interval))")
    r.set_defaults(handler=_reaper)

    u = sub.add_parser("up", help="start API + worker + reaper locally (SQLite + filesystem broker)")
    _stack_args(u)
    u.add_argument("--workers", type=positive_int, default=1, help="worker processes (default 1)")
    u.set_defaults(handler=_up)

    d = sub.add_parser("demo", help="a baseline and a MAR student (from the published teacher) through the HTTP API")
    _stack_args(d)
    d.add_argument("--workers", type=positive_int, default=1,
                   help="workers; with 2 the two students train at the same time")
    d.add_argument("--quick", action="store_true", help="a few iterations per job (a smoke run)")
    d.add_argument("--train-teacher", action="store_true",
                   help="train the teacher through the service too, instead of using the published one")
    d.set_defaults(handler=_demo)


def _stack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--state", type=Path, default=None, help="state folder (default $MAR_STATE_DIR or ./.mar)")


# ------------------------------------------------------------------------------ worker, reaper


def worker_hostname(pid: int | None = None) -> str:
    """``mar-gpu{N}-{pid}@%h`` when ``CUDA_VISIBLE_DEVICES`` names GPUs, else ``mar-{pid}@%h``."""
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    base = f"mar-gpu{gpus.replace(',', '-')}" if gpus and gpus != "-1" else "mar"
    return f"{base}-{pid or os.getpid()}@%h"


def _worker(args: argparse.Namespace) -> int:
    from api.settings import get_settings
    from worker.celery_app import app

    stop_with_parent_from_env("worker")
    settings = get_settings()
    argv = [
        "worker", "--queues", settings.queue, "--concurrency", str(args.concurrency), "--pool", "threads",
        "--hostname", args.hostname or worker_hostname(), "--loglevel", args.loglevel,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    app.worker_main(argv)
    return 0


def _stop_event_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum, _frame):
        logger.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def _reaper(args: argparse.Namespace) -> int:
    from worker.reaper import run_reaper

    stop_with_parent_from_env("reaper")
    run_reaper(args.interval, stale_after=args.stale_after, stop=_stop_event_on_signals())
    return 0


# ------------------------------------------------------------------------------ up, demo


def _use_state(state: Path | None) -> None:
    """Point the settings at ``state`` (exported, so the child processes see it too)."""
    from api.settings import get_settings

    if state is not None:
        os.environ["MAR_STATE_DIR"] = str(state.expanduser().resolve())
    get_settings.cache_clear()


def _up(args: argparse.Namespace) -> int:
    from worker.embedded import prepare_state, start_stack

    _use_state(args.state)
    info = prepare_state()
    stop = _stop_event_on_signals()
    with start_stack(args.host, args.port, workers=args.workers, log_dir=None) as (stack, url):
        print(f"MAR service at {url}   (state: {info.state_dir})")
        print(f"API key: {info.api_key}   (saved in {info.key_file})")
        print(f"try:  MAR_API_URL={url} MAR_API_KEY=$(cat {info.key_file}) mar jobs")
        print("Ctrl-C stops everything.", flush=True)
        while not stop.wait(1.0):
            dead = stack.dead_parts()
            if dead:
                for part in dead:
                    logger.error("%s exited with code %s; stopping the stack", part.name, part.proc.returncode)
                return 1
    return 0


def _raise_keyboard_interrupt(signum, _frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _demo(args: argparse.Namespace) -> int:
    from worker.demo import run_demo

    _use_state(args.state)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)  # stop the stack like Ctrl-C does
    return run_demo(args.host, args.port, workers=args.workers, quick=args.quick,
                    train_teacher=args.train_teacher)
