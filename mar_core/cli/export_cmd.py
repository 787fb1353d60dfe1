"""``mar export RUN_DIR --format onnx|torchscript [--format ...] [--out DIR]``: a run's detector as
ONNX and/or TorchScript files that load without this project (``mar_core.export``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mar_core.export import EXPORT_FILES, EXPORT_FORMATS, export_detector


def register(add) -> None:
    """Add ``mar export``; ``add(name)`` returns a command's parser."""
    p = add("export")
    p.add_argument("run_dir", type=Path, help="run folder (model.json + model.pt)")
    p.add_argument(
        "--format",
        dest="formats",
        action="append",
        choices=EXPORT_FORMATS,
        default=None,
        help=f"repeat for several (default: all): {', '.join(f'{k} -> {v}' for k, v in EXPORT_FILES.items())}",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default: RUN_DIR)")
    p.add_argument(
        "--score-threshold",
        type=float,
        default=None,
        help="the exported model keeps detections scoring above this (default: the model's, 0.05)",
    )
    p.set_defaults(handler=export)


def export(args: argparse.Namespace) -> int:
    written = export_detector(
        args.run_dir,
        args.out if args.out is not None else args.run_dir,
        formats=args.formats or EXPORT_FORMATS,
        score_threshold=args.score_threshold,
    )
    print(json.dumps({fmt: str(path) for fmt, path in written.items()}, indent=2))
    return 0
