"""A pipeline step on the typed SDK: submit a job, follow it, and promote its model when its AP
beats a threshold, else exit non-zero (a CI step can gate on it).

    MAR_API_URL=... MAR_API_KEY=... python examples/pipeline.py SPEC.json --data DATASET_DIR \\
        --min-ap 0.30 --promote-to models/current/ [--idempotency-key nightly-2026-12-07]

``--data`` uploads a dataset folder or archive (once: the service is asked by sha256 first) and
points the spec at it. With ``--idempotency-key``, running the step again returns the same job
instead of training another. Exit codes: 0 promoted, 1 the job failed or its AP is below the
threshold, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from api.datasets_cmd import archive_of
from api.schemas import StreamEvent
from api.sdk import ApiClientError, MarClient

PROMOTED = ("model.pt", "model.json", "report.json")


def show(event: StreamEvent) -> None:
    if event.type == "status":
        print(f"status: {event.data.get('status')}", flush=True)
    elif event.type == "progress" and event.id is not None:  # the stored milestones, not every step
        print(f"step {event.data.get('step')}/{event.data.get('total')}", flush=True)


def promote(client: MarClient, job_id: str, dest: Path) -> None:
    """The job's model files into ``dest``, replaced as a whole (a reader never sees half)."""
    staging = Path(tempfile.mkdtemp(prefix=".promote-", dir=dest.parent))
    for name in PROMOTED:
        client.download(job_id, name, staging)  # sha256 verified
    old = dest.with_name(dest.name + ".old")
    if dest.exists():
        dest.rename(old)
    staging.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    spec = json.loads(Path(args.spec).read_text())
    with MarClient() as client:
        if args.data:
            with tempfile.TemporaryDirectory() as tmp:
                spec["dataset"] = {"id": client.upload_dataset(archive_of(Path(args.data), Path(tmp))).id}
        job = client.submit(spec, idempotency_key=args.idempotency_key)
        print(f"job {job.id} ({job.status})", flush=True)
        done = client.wait(job.id, on_event=show)
        if done.status != "succeeded":
            print(f"job {done.id} {done.status}: {done.error}", file=sys.stderr)
            return 1
        points = client.metrics(done.id, names=["eval/AP"]).series.get("eval/AP") or []
        ap = points[-1].value if points else None
        if ap is None or ap < args.min_ap:
            print(f"AP {ap} is below {args.min_ap}: not promoted", file=sys.stderr)
            return 1
        args.promote_to.parent.mkdir(parents=True, exist_ok=True)
        promote(client, done.id, args.promote_to)
    print(f"AP {ap:.4f} >= {args.min_ap}: promoted to {args.promote_to}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("spec", help="a job spec (JSON)")
    p.add_argument("--data", default=None, help="a dataset folder or archive to upload and train on")
    p.add_argument("--min-ap", type=float, required=True, help="promote only at or above this AP (0-1)")
    p.add_argument("--promote-to", type=Path, required=True, help="the folder the model files go to")
    p.add_argument("--idempotency-key", default=None, help="the same key returns the same job")
    args = p.parse_args(argv)
    try:
        return run(args)
    except ApiClientError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
