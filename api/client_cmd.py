"""Client commands that talk to the API over HTTP (``MAR_API_URL`` / ``MAR_API_KEY``, or
``--api-url`` / ``--api-key``): ``mar submit``, ``jobs``, ``status``, ``cancel``, ``download``,
and the lifecycle commands ``pause``, ``resume``, ``delete``, ``checkpoints``."""

from __future__ import annotations

import argparse
import logging
import sys

from tqdm import tqdm

from api.db import states
from api.schemas import JobCheckpointPublic, JobPublic, StreamEvent
from api.sdk import MarClient
from mar_core.spec import read_spec_file
from mar_core.spec_limits import escape_controls

log = logging.getLogger(__name__)


def make_client(args: argparse.Namespace) -> MarClient:
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise

    return MarClient(base_url=args.api_url, api_key=args.api_key)


def _summary(job: JobPublic) -> str:
    step, total = job.progress_step, job.progress_total
    progress = f" step {step}/{total}" if step is not None and total else ""
    phase = f" [{job.phase}]" if job.phase else ""
    return f"{job.id}  {job.status}{phase}{progress}  attempt {job.attempt}/{job.max_attempts}"


def _exit_code(status: str) -> int:
    return 0 if status == states.SUCCEEDED else 1


class ProgressPrinter:
    """Shows a job's events: a progress bar, and its phase, status and log lines above it."""

    def __init__(self, job_id: str):
        self.job_id = job_id
        self.bar: tqdm[None] | None = None

    def __call__(self, ev: StreamEvent) -> None:
        kind, data = ev.type, ev.data
        if kind == "progress":
            if self.bar is None:
                self.bar = tqdm(total=data.get("total"), unit="it", desc=self.job_id[:8], dynamic_ncols=True)
            self.bar.total = data.get("total") or self.bar.total
            self.bar.n = data.get("step", self.bar.n)
            self.bar.refresh()
        elif kind == "phase":
            self.write(f"phase: {data.get('phase')}")
        elif kind == "status":
            self.write(f"status: {data.get('status')}")
        elif kind == "log" and data.get("message"):
            self.write(f"{data.get('level', 'info')}: {data['message']}")

    def write(self, line: str) -> None:
        (self.bar.write if self.bar else print)(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def print_outcome(job: JobPublic) -> int:
    """The job's error (on stderr) and final status; returns the CLI exit code."""
    err = job.error
    if err:
        param = f" ({err['param']})" if err.get("param") else ""
        print(f"error: {err.get('code')}{param}: {escape_controls(str(err.get('message')))}", file=sys.stderr)
    print(f"job {job.id} {job.status}")
    return _exit_code(job.status)


def follow(client: MarClient, job_id: str) -> JobPublic:
    """The job once finished, its progress shown from its event stream meanwhile."""
    printer = ProgressPrinter(job_id)
    try:
        return client.wait(job_id, on_event=printer)
    finally:
        printer.close()


def _follow(client: MarClient, job_id: str) -> int:
    return print_outcome(follow(client, job_id))


def cmd_submit(args: argparse.Namespace) -> int:
    spec = read_spec_file(args.spec)
    with make_client(args) as client:
        job = client.submit(spec, idempotency_key=args.idempotency_key)
        print(job.id)
        if not args.wait:
            return 0
        return _follow(client, job.id)


def cmd_jobs(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        page = client.list_jobs(status=args.status, limit=args.limit)
    print(f"{'ID':<34}{'STATUS':<12}{'KIND':<9}{'PROGRESS':<14}{'CREATED':<22}NAME")
    for j in page.data:
        step, total = j.progress_step, j.progress_total
        progress = f"{step}/{total}" if step is not None and total else "-"
        created = j.created_at.isoformat()[:19].replace("T", " ")
        name = escape_controls(j.name or "")
        print(f"{j.id:<34}{j.status:<12}{j.kind:<9}{progress:<14}{created:<22}{name}")
    if page.next_cursor:
        print(f"(more: --limit > {args.limit})", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        job = client.get_job(args.id)
        if args.json:
            print(job.model_dump_json(indent=2))
        else:
            print(_summary(job))
            if job.waiting:
                print(f"waiting: {job.waiting}")
            if job.error:
                e = job.error
                print(f"error: {e.get('code')} ({e.get('param') or '-'}): {e.get('message')}")
        if args.wait and job.status not in states.TERMINAL:
            return _follow(client, args.id)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        job = client.cancel(args.id)
    print(_summary(job))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        names = [args.name] if args.name else [a.name for a in client.artifacts(args.id)]
        if not names:
            print(f"job {args.id} has no artifacts yet", file=sys.stderr)
            return 1
        for name in names:
            path = client.download(args.id, name, args.out)
            print(f"{path}  (sha256 verified)")
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        job = client.pause(args.id)
    print(_summary(job))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        job = client.resume(args.id)
    print(_summary(job))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        client.delete_job(args.id)
    print(f"job {args.id} deleted")
    return 0


def _checkpoint_row(name: str, c: JobCheckpointPublic | None) -> str:
    if c is None:
        return f"{name:<6}-"
    step = "-" if c.step is None else str(c.step)
    ap = "-" if c.AP is None else f"{c.AP:.4f}"
    modified = c.modified_at.isoformat()[:19].replace("T", " ")
    return f"{name:<6}{step:<8}{ap:<9}{c.size:<12}{modified}"


def cmd_checkpoints(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        found = client.checkpoints(args.id)
        print(f"{'NAME':<6}{'STEP':<8}{'AP':<9}{'BYTES':<12}MODIFIED")
        for name in ("last", "best"):
            print(_checkpoint_row(name, getattr(found, name)))
        if args.download:
            if getattr(found, args.download) is None:
                print(f"job {args.id} has no {args.download} checkpoint yet", file=sys.stderr)
                return 1
            path = client.download_checkpoint(args.id, args.download, f"{args.out}/{args.download}.pt")
            print(f"{path}  (sha256 verified)")
    return 0


def client_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--api-url", default=None, help="API base URL (default: $MAR_API_URL or http://127.0.0.1:8000)"
    )
    p.add_argument("--api-key", default=None, help="API key (default: $MAR_API_KEY)")


def register(add) -> None:
    """Add ``submit``, ``jobs``, ``status``, ``cancel``, ``download``, ``pause``, ``resume``,
    ``delete`` and ``checkpoints``; ``add(name)`` returns a command's parser."""
    p = add("submit")
    p.add_argument("spec", help="path of the JobSpec JSON file")
    p.add_argument("--wait", action="store_true", help="follow progress; exit 0 on succeeded, 1 otherwise")
    p.add_argument(
        "--idempotency-key", default=None, help="resubmitting with the same key returns the same job"
    )
    client_flags(p)
    p.set_defaults(handler=cmd_submit)

    p = add("jobs")
    p.add_argument("--status", default=None, help="filter: one status or several separated by commas")
    p.add_argument("--limit", type=int, default=50)
    client_flags(p)
    p.set_defaults(handler=cmd_jobs)

    p = add("status")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="the full job as JSON")
    p.add_argument("--wait", action="store_true", help="then follow it until it finishes")
    client_flags(p)
    p.set_defaults(handler=cmd_status)

    p = add("cancel")
    p.add_argument("id")
    client_flags(p)
    p.set_defaults(handler=cmd_cancel)

    p = add("download")
    p.add_argument("id")
    p.add_argument("--name", default=None, help="one artifact (default: all), e.g. model.pt")
    p.add_argument("--out", default=".", help="destination folder")
    client_flags(p)
    p.set_defaults(handler=cmd_download)

    for name, handler in (("pause", cmd_pause), ("resume", cmd_resume), ("delete", cmd_delete)):
        p = add(name)
        p.add_argument("id")
        client_flags(p)
        p.set_defaults(handler=handler)

    p = add("checkpoints")
    p.add_argument("id")
    p.add_argument("--download", choices=("last", "best"), default=None, help="also fetch this one")
    p.add_argument("--out", default=".", help="destination folder of --download")
    client_flags(p)
    p.set_defaults(handler=cmd_checkpoints)
