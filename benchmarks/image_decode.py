"""``mar bench image-decode``: how fast the dataset check decodes image files, in images per
second, at 256 px and 1,000 px (JPEG, quality 90, photo-like content generated into the cache).

Rows: ``check_file`` (what the check runs on each file: full decode and a digest of the bytes,
one process), ``load_rgb`` (the training loader: decode, EXIF orientation, RGB image),
``torchvision.io.decode_image`` (read and decode with EXIF orientation, one torch thread: the
alternative the issue asked to measure; the check cannot use it, the API never imports torch),
and ``scan_files`` with every worker process (the check at upload). The result goes to
``results/image-decode-<UTC time>.json``; ``mar bench report`` prints the newest.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image, read_file

from benchmarks.machine import machine_info
from benchmarks.markdown import newest_result_section, table
from mar_core.annotations.image_scan import default_workers, scan_files
from mar_core.atomic import atomic_write_json
from mar_core.image_io import check_file, load_rgb

SIDES = {256: 400, 1000: 100}  # side in pixels -> images decoded


def photo_like(side: int, seed: int) -> Image.Image:
    """Smooth colour fields, a few shapes and sensor-like noise: JPEG sizes close to photos'."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    im = np.asarray(Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC), np.int16)
    for _ in range(6):
        x, y = rng.integers(0, side * 3 // 4, 2)
        w, h = rng.integers(side // 16, side // 4, 2)
        im[y : y + h, x : x + w] = rng.integers(0, 256, 3)
    im += rng.integers(-6, 7, im.shape, dtype=np.int16)
    return Image.fromarray(np.clip(im, 0, 255).astype(np.uint8))


def write_images(folder: Path, side: int, count: int) -> list[Path]:
    """``count`` JPEGs of ``side`` px in ``folder`` (kept: written once)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:05d}.jpg" for i in range(count)]
    for i, path in enumerate(paths):
        if not path.is_file():
            photo_like(side, i).save(path, "JPEG", quality=90)
    return paths


def _torchvision_decode(path: Path) -> torch.Tensor:
    return decode_image(read_file(str(path)), mode=ImageReadMode.RGB, apply_exif_orientation=True)


def _rate(decode: Callable[[list[Path]], object], paths: list[Path]) -> float:
    decode(paths[:4])  # warm: imports, first allocations
    start = time.perf_counter()
    decode(paths)
    return len(paths) / (time.perf_counter() - start)


POOL_REPEAT = 4  # the pool decodes the files this many times over: its start is paid once


def run_image_decode(results: Path, cache: Path, command: str = "") -> tuple[Path, dict[str, Any]]:
    """Measure every row at every side; write the result file; ``(path, result)``."""
    started = dt.datetime.now(dt.timezone.utc)
    workers = default_workers()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows: dict[str, dict[str, float]] = {}
    files: dict[str, float] = {}
    try:
        for side, count in SIDES.items():
            paths = write_images(Path(cache) / "image-decode" / f"{side}px", side, count)
            files[str(side)] = round(sum(p.stat().st_size for p in paths) / len(paths) / 1024, 1)
            modes = {
                "check_file": lambda ps: [check_file(p) for p in ps],
                "load_rgb": lambda ps: [load_rgb(p) for p in ps],
                "torchvision.io.decode_image": lambda ps: [_torchvision_decode(p) for p in ps],
                f"scan_files, {workers} processes": lambda ps: scan_files(
                    ps, workers=workers, parallel_min=1
                ),
            }
            for name, decode in modes.items():
                rows.setdefault(name, {})[str(side)] = round(_rate(decode, paths), 1)
    finally:
        torch.set_num_threads(threads)
    result = {
        "command": command,
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "images": {str(s): n for s, n in SIDES.items()},
        "mean_kib": files,
        "workers": workers,
        "images_per_second": rows,
    }
    out = Path(results) / f"image-decode-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    atomic_write_json(out, result)
    return out, result


def format_image_decode(result: dict[str, Any]) -> list[str]:
    """The result as Markdown lines: images per second, one row per way of decoding."""
    sides = list(result["images"])
    rows = [[name, *(f"{r[s]:.0f}" for s in sides)] for name, r in result["images_per_second"].items()]
    sizes = ", ".join(f"{result['images'][s]} at {s} px, {result['mean_kib'][s]} KiB each" for s in sides)
    return [
        f"Generated photo-like JPEGs (quality 90; {sizes} on average), each decoded in full. One "
        f"process per row but the last: the check's pool of {result['workers']} processes, over "
        f"{POOL_REPEAT} times as many files, starting its processes included.",
        "",
        *table(["decode", *(f"images/s at {s} px" for s in sides)], rows),
    ]


def image_decode_section(results: Path) -> list[str]:
    """BENCHMARKS.md's section: the newest ``image-decode-*.json`` in ``results``."""
    return newest_result_section(
        results, "image-decode", "Image decoding in the dataset check", format_image_decode
    )
