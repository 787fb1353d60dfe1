"""The embedded stack: ``mar up`` and ``mar demo``.

``mar up`` is the embedded default: SQLite and kombu's ``filesystem://`` transport under the
state folder (unless ``DATABASE_URL`` / ``BROKER_URL`` point elsewhere), migrations run, then the
API, one worker and the reaper as child processes; Ctrl-C (or SIGTERM) stops them all.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from pathlib import Path

from api.settings import get_settings
from mar_core.cli.argtypes import positive_int
from worker.demo import run_demo
from worker.embedded import prepare_state, start_stack
from worker.procs import stop_event_on_signals

logger = logging.getLogger(__name__)


def register(add) -> None:
    """Add ``up`` and ``demo``; ``add(name)`` returns a command's parser."""
    u = add("up")
    _stack_args(u)
    u.add_argument("--workers", type=positive_int, default=1, help="worker processes (default 1)")
    u.set_defaults(handler=_up)

    d = add("demo")
    _stack_args(d)
    d.add_argument(
        "--workers",
        type=positive_int,
        default=2,
        help="workers (default 2: the two students train at the same time, a core each on 2 cores)",
    )
    d.add_argument("--quick", action="store_true", help="a few iterations per job (a smoke run)")
    d.add_argument(
        "--train-teacher",
        action="store_true",
        help="train the teacher through the service too, instead of using the published one",
    )
    d.set_defaults(handler=_demo)


def _stack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--state", type=Path, default=None, help="state folder (default $MAR_STATE_DIR or ./.mar)")


def _use_state(state: Path | None) -> None:
    """Point the settings at ``state`` (exported, so the child processes see it too)."""
    if state is not None:
        os.environ["MAR_STATE_DIR"] = str(state.expanduser().resolve())
    get_settings.cache_clear()


def _up(args: argparse.Namespace) -> int:
    _use_state(args.state)
    info = prepare_state()
    stop = stop_event_on_signals()
    with start_stack(args.host, args.port, workers=args.workers, log_dir=None) as (stack, url):
        print(f"MAR service at {url}   (state: {info.state_dir})")
        print(f"API key: {info.api_key}   (saved in {info.key_file})")
        print(f"try:  MAR_API_URL={url} MAR_API_KEY=$(cat {info.key_file}) mar jobs")
        print(f"dashboard: {url}/ui/   (sign in with the API key)")
        print("Ctrl-C stops everything.", flush=True)
        while not stop.wait(1.0):
            dead = stack.dead_parts()
            if dead:
                for part in dead:
                    logger.error(
                        "%s exited with code %s; stopping the stack", part.name, part.proc.returncode
                    )
                return 1
    return 0


def _raise_keyboard_interrupt(signum, _frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _demo(args: argparse.Namespace) -> int:
    _use_state(args.state)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)  # stop the stack like Ctrl-C does
    return run_demo(
        args.host, args.port, workers=args.workers, quick=args.quick, train_teacher=args.train_teacher
    )
