"""``mar predict WEIGHTS_OR_RUN_DIR IMAGE_OR_DIR... --out DIR [--score-threshold S]``: draw a
detector's boxes on images and write its detections as COCO results (``mar_core.predict``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from mar_core.cli.argtypes import positive_int
from mar_core.errors import SpecError
from mar_core.predict import DEFAULT_SCORE_THRESHOLD, IMAGES_FILE, RESULTS_FILE, predict_to_folder


def register(add) -> None:
    """Add ``mar predict``; ``add(name)`` returns a command's parser."""
    p = add("predict")
    p.add_argument(
        "weights",
        type=Path,
        metavar="WEIGHTS_OR_RUN_DIR",
        help="run folder (model.json + model.pt), or a weights file with model.json beside it",
    )
    p.add_argument(
        "images", nargs="+", type=Path, metavar="IMAGE_OR_DIR", help="image files and/or folders of images"
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help=f"output folder: the drawn images, {RESULTS_FILE} (COCO results) and {IMAGES_FILE}",
    )
    p.add_argument(
        "--score-threshold",
        type=float,
        default=DEFAULT_SCORE_THRESHOLD,
        help=f"keep detections scoring at least this, in [0, 1] (default {DEFAULT_SCORE_THRESHOLD})",
    )
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--batch-size", type=positive_int, default=4, help="images per forward pass")
    p.set_defaults(handler=predict)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SpecError("--device cuda: no CUDA device is available", param="device")
    return torch.device(name)


def predict(args: argparse.Namespace) -> int:
    files = predict_to_folder(
        args.weights,
        args.images,
        args.out,
        score_threshold=args.score_threshold,
        batch_size=args.batch_size,
        device=_device(args.device),
    )
    print(
        json.dumps(
            {
                "images": len(files.drawn),
                "detections": files.detections,
                "out": str(args.out),
                "results": str(files.results),
                "coco_images": str(files.images),
            },
            indent=2,
        )
    )
    return 0
