"""``mar run SPEC.json --workdir DIR``: run a train or distill job locally, no server."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from mar_core.run import run_job
from mar_core.spec import parse_spec


def register(add) -> None:
    """Add ``mar run``; ``add(name)`` returns a command's parser."""
    p = add("run")
    p.add_argument("spec", type=Path, help="job spec JSON file")
    p.add_argument("--workdir", type=Path, required=True, help="output folder (resumes from its checkpoint)")
    p.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default=None, help="override resources.device"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


class ProgressBar:
    """Turns progress events into a tqdm bar on stderr."""

    def __init__(self, enabled: bool):
        self.bar = tqdm(total=0, unit="step", disable=not enabled, file=sys.stderr, dynamic_ncols=True)

    def __call__(self, event: dict) -> None:
        kind = event["type"]
        if kind == "progress":
            self.bar.total = event["total"]
            self.bar.n = event["step"]
            self.bar.refresh()
        elif kind == "metrics":
            shown = {
                k.rsplit("/", 1)[-1]: f"{v:.3g}"
                for k, v in event["values"].items()
                if k.startswith("loss/") or k in ("eval/AP",)
            }
            self.bar.set_postfix(shown, refresh=False)
        elif kind == "phase":
            self.bar.set_description(event["phase"])

    def close(self) -> None:
        self.bar.close()


def run(args: argparse.Namespace) -> int:
    spec = parse_spec(args.spec)  # SpecError -> exit 2 with the field named
    bar = ProgressBar(enabled=not args.no_progress)
    try:
        report = run_job(spec, args.workdir, progress=bar, device=args.device)
    finally:
        bar.close()
    ev = report["eval"]
    print(
        json.dumps(
            {
                "AP": ev.get("AP"),
                "AP50": ev.get("AP50"),
                "wall_seconds": report["wall_seconds"],
                "workdir": str(args.workdir),
            },
            indent=2,
        )
    )
    return 0
