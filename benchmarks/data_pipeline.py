"""``mar bench data-pipeline``: how many training images per second the data pipeline gives a
worker, at 256 px and 800 px (photo-like JPEGs, quality 90, one box each, COCO layout, written
into the cache once).

Rows: the decode alone on one core (Pillow, ``mar_core.image_io.load_rgb`` to a tensor, against
``read_image_tensor``, the loader's: torchvision's libjpeg-turbo decoder for JPEGs), then the
training loader end to end (``build_train_loader``: read, decode, targets, collate, and the
trainer's random flip of the batch) with 0, 1 and 2 ``DataLoader`` worker processes; one torch
thread in every process. Pinned memory is measured only where CUDA is (it pins for the copy to a
GPU). The result goes to ``results/data-pipeline-<UTC time>.json``; ``mar bench report`` prints the
newest.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import torch
from torchvision.transforms.functional import pil_to_tensor

from benchmarks.image_decode import write_images
from benchmarks.machine import machine_info
from benchmarks.markdown import newest_result_section, table
from mar_core.atomic import atomic_write_json
from mar_core.data import load_dataset
from mar_core.data.image_tensor import read_image_tensor
from mar_core.data.loader import build_train_loader
from mar_core.data.transforms import random_hflip
from mar_core.image_io import load_rgb
from mar_core.spec import DatasetSpec

SIDES = {256: 400, 800: 96}  # side in pixels -> images in the set
BATCH = 8
WORKERS = (0, 1, 2)


def write_coco_set(root: Path, side: int, count: int) -> Path:
    """A COCO-layout training split of ``count`` JPEGs (one box each); written once."""
    images = write_images(root / "train", side, count)
    ann = root / "annotations" / "instances_train.json"
    if not ann.is_file():
        box = [side / 4, side / 4, side / 2, side / 2]
        coco = {
            "images": [
                {"id": i + 1, "file_name": p.name, "width": side, "height": side}
                for i, p in enumerate(images)
            ],
            "annotations": [
                {
                    "id": i + 1,
                    "image_id": i + 1,
                    "category_id": 1,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
                for i in range(len(images))
            ],
            "categories": [{"id": 1, "name": "object"}],
        }
        atomic_write_json(ann, coco)
    return root


def _decode_rate(read, paths: list[Path]) -> float:
    read(paths[0])  # warm: imports, first allocations
    start = time.perf_counter()
    for p in paths:
        read(p)
    return len(paths) / (time.perf_counter() - start)


def _loader_rate(root: Path, workers: int, batches: int) -> float:
    dataset = load_dataset(DatasetSpec(format="coco", path=str(root)), "train")
    loader = build_train_loader(
        dataset, BATCH, seed=0, start_iter=0, end_iter=batches + 1, num_workers=workers
    )
    it = iter(loader)
    next(it)  # the workers started and the first batch made: a run pays it once
    start = time.perf_counter()
    for images, targets in it:
        random_hflip(images, targets, 0.5)
    return batches * BATCH / (time.perf_counter() - start)


def run_data_pipeline(results: Path, cache: Path, command: str = "") -> tuple[Path, dict[str, Any]]:
    """Measure every row at every side; write the result file; ``(path, result)``."""
    started = dt.datetime.now(dt.timezone.utc)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows: dict[str, dict[str, float]] = {}
    try:
        for side, count in SIDES.items():
            root = write_coco_set(Path(cache) / "data-pipeline" / f"{side}px", side, count)
            paths = sorted((root / "train").glob("*.jpg"))
            decoders = {
                "decode: Pillow (load_rgb), 1 core": lambda p: (
                    pil_to_tensor(load_rgb(p)[0]).float().div_(255)
                ),
                "decode: read_image_tensor (torchvision for JPEG), 1 core": read_image_tensor,
            }
            for name, read in decoders.items():
                rows.setdefault(name, {})[str(side)] = round(_decode_rate(read, paths), 1)
            for workers in WORKERS:
                name = f"training loader, {workers} worker process{'es' if workers != 1 else ''}"
                rows.setdefault(name, {})[str(side)] = round(
                    _loader_rate(root, workers, count // BATCH - 1), 1
                )
    finally:
        torch.set_num_threads(threads)
    result = {
        "command": command,
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "images": {str(s): n for s, n in SIDES.items()},
        "batch": BATCH,
        "cuda": torch.cuda.is_available(),
        "images_per_second": rows,
    }
    out = Path(results) / f"data-pipeline-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    atomic_write_json(out, result)
    return out, result


def format_data_pipeline(result: dict[str, Any]) -> list[str]:
    """The result as Markdown lines: images per second, one row per stage and worker count."""
    sides = list(result["images"])
    rows = [[name, *(f"{r[s]:.0f}" for s in sides)] for name, r in result["images_per_second"].items()]
    sets = ", ".join(f"{result['images'][s]} at {s} px" for s in sides)
    pinned = "" if result.get("cuda") else " Pinned memory: not measured (no CUDA on this machine)."
    return [
        f"Photo-like JPEGs ({sets}), batches of {result['batch']}, one torch thread per process.{pinned}",
        "",
        *table(["stage", *(f"images/s at {s} px" for s in sides)], rows),
    ]


def data_pipeline_section(results: Path) -> list[str]:
    """BENCHMARKS.md's section: the newest ``data-pipeline-*.json`` in ``results``."""
    return newest_result_section(results, "data-pipeline", "Data pipeline", format_data_pipeline)
