"""Entry point of the ``mar`` console script.

Every command is named once in ``COMMANDS`` with the module that implements it and its one-line
help. Only the module of the command given is imported (torch, Celery or SQLAlchemy load only
when a command needs them, so ``mar --help`` and ``mar submit`` start fast); the other commands
appear as stubs with their help.

Handlers return an exit code. Input errors (``MarError`` with ``exit_code`` 2) print their
message to stderr and exit 2; nothing else calls ``sys.exit``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import NamedTuple

from mar_core.errors import MarError


class Command(NamedTuple):
    module: str  # defines ``register(add)``: ``add(name)`` returns that command's sub-parser
    help: str


COMMANDS: dict[str, Command] = {
    "run": Command("mar_core.cli.run_cmd", "run a job spec locally (resumes when DIR holds a checkpoint)"),
    "data": Command("mar_core.cli.data_cmd", "datasets: synthesise, check"),
    "export": Command("mar_core.cli.export_cmd", "export a run's detector to ONNX and/or TorchScript"),
    "predict": Command("mar_core.cli.predict_cmd", "draw a detector's boxes on images, write COCO results"),
    "api": Command("api.server_cmd", "run the HTTP API (runs database migrations at start)"),
    "db": Command("api.server_cmd", "database maintenance"),
    "apikey": Command("api.server_cmd", "manage API keys (on this host's database)"),
    "submit": Command("api.client_cmd", "submit a job spec (JSON) to the API"),
    "jobs": Command("api.client_cmd", "list jobs, newest first"),
    "status": Command("api.client_cmd", "show one job"),
    "cancel": Command("api.client_cmd", "cancel a job"),
    "download": Command("api.client_cmd", "download a job's artifacts, verifying sha256"),
    "pause": Command("api.client_cmd", "pause a job at its next checkpoint, freeing its worker"),
    "resume": Command("api.client_cmd", "resume a paused job from its checkpoint"),
    "delete": Command("api.client_cmd", "delete a finished job's files; the job is hidden"),
    "checkpoints": Command("api.client_cmd", "a job's last and best checkpoints (step, AP); --download"),
    "datasets": Command("api.datasets_cmd", "upload, list, show or delete datasets on the API"),
    "queue": Command("api.queue_cmd", "the queue per worker pool: your waiting jobs, positions, ETAs"),
    "quota": Command("api.queue_cmd", "a project's quota and use; with limits, set it (admin key)"),
    "worker": Command("worker.service_cmd", "run a Celery worker for the job queue (one per GPU)"),
    "reaper": Command("worker.service_cmd", "re-queue jobs whose worker stopped heartbeating"),
    "up": Command("worker.stack_cmd", "start API + worker + reaper locally (SQLite + filesystem broker)"),
    "demo": Command(
        "worker.stack_cmd", "a baseline and a MAR student (from the published teacher) through the HTTP API"
    ),
    "distill": Command(
        "worker.distill_cmd",
        "dataset folder + teacher file in, distilled student (and ONNX) out, in one command",
    ),
    "bench": Command("benchmarks.cli", "benchmarks: quality (AP), perf (speed), report, tune"),
}


def _chosen(argv: Sequence[str]) -> str | None:
    """The command named in ``argv`` (its first argument that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser of ``command``'s module; every other command as a stub with its help.
    ``command=None`` (or an unknown name) gives stubs only, enough for ``--help`` and errors."""
    parser = argparse.ArgumentParser(prog="mar", description="MAR distillation for object detectors")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parsers: dict[str, argparse.ArgumentParser] = {}

    def add(name: str) -> argparse.ArgumentParser:
        parsers[name] = sub.add_parser(name, help=COMMANDS[name].help, description=COMMANDS[name].help)
        return parsers[name]

    module = COMMANDS[command].module if command in COMMANDS else None
    for name, cmd in COMMANDS.items():
        if name in parsers:
            continue
        if cmd.module == module:
            importlib.import_module(module).register(add)
        else:
            add(name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_chosen(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except MarError as e:
        print(f"mar {args.command}: error: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"mar {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
