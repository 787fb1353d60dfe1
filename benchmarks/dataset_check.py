"""``mar bench dataset-check``: time and peak memory of checking a COCO annotation file the size
of COCO train2017, streamed (``ijson``, what the API runs) against ``json.load``.

The file is generated once into the cache (``benchmarks.coco_gen``, deterministic); each mode
runs in its own process (``benchmarks.dataset_check_child``). The result goes to
``results/dataset-check-<UTC time>.json``; ``mar bench report`` prints the newest.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.coco_gen import COCO_TRAIN2017, write_coco_file
from benchmarks.dataset_check_child import MODES
from benchmarks.image_decode import image_decode_section
from benchmarks.machine import machine_info
from benchmarks.markdown import newest_result_section, table
from benchmarks.store import REPO_ROOT
from mar_core.atomic import atomic_write_json

log = logging.getLogger(__name__)

CHILD_TIMEOUT_S = 600


def _child(mode: str, path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.dataset_check_child", mode, str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"dataset-check {mode} failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout)


def run_dataset_check(
    results: Path,
    cache: Path,
    images: int = COCO_TRAIN2017["images"],
    boxes: int = COCO_TRAIN2017["boxes"],
    seed: int = 0,
    command: str = "",
) -> tuple[Path, dict[str, Any]]:
    """Generate (or reuse) the file, measure every mode, write the result; ``(path, result)``."""
    started = dt.datetime.now(dt.timezone.utc)
    path = Path(cache) / "dataset-check" / f"instances_{images}x{boxes}_s{seed}.json"
    generate_s = None
    if not path.is_file():
        t0 = time.perf_counter()
        write_coco_file(path, images, boxes, seed)
        generate_s = round(time.perf_counter() - t0, 1)
    modes = {m: _child(m, path) for m in MODES}
    reports = {m: modes[m].pop("report") for m in ("stream", "json")}
    if reports["stream"] != reports["json"]:
        raise RuntimeError(f"the streamed and loaded reports differ: {reports}")
    result = {
        "command": command,
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "file": {
            "images": images,
            "boxes": boxes,
            "seed": seed,
            "mib": round(path.stat().st_size / 2**20, 1),
        },
        "generate_seconds": generate_s,
        "modes": modes,
        "report": reports["stream"],
    }
    out = Path(results) / f"dataset-check-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    atomic_write_json(out, result)
    return out, result


def format_dataset_check(result: dict[str, Any]) -> list[str]:
    """The result as Markdown lines: one row per mode, peak memory above the baseline too."""
    modes, f = result["modes"], result["file"]
    base = modes["baseline"]["max_rss_mib"]
    names = {
        "baseline": "interpreter + imports only",
        "stream": "streamed (`ijson`, `inspect_dataset`)",
        "json": "`json.load` + the same checks",
    }
    rows = [
        [names[m], f"{r['seconds']:.2f}", f"{r['max_rss_mib']:.0f}", f"{r['max_rss_mib'] - base:.0f}"]
        for m, r in modes.items()
    ]
    rep = result["report"]
    return [
        f"A generated COCO annotation file of {f['images']:,} images and {f['boxes']:,} boxes "
        f"({f['mib']} MiB; images absent, so no image header is read), checked in a fresh process "
        "per row. Both checks found the same: "
        f"{rep['boxes']:,} boxes, {rep['crowd']:,} crowd, {rep['clipped']:,} clipped, "
        f"{rep['dropped']:,} dropped.",
        "",
        *table(["check", "seconds", "peak RSS (MiB)", "above baseline (MiB)"], rows),
    ]


def dataset_check_section(results: Path) -> list[str]:
    """BENCHMARKS.md's sections: the newest ``dataset-check-*.json`` in ``results``, then the
    image decoding speed (``benchmarks.image_decode``)."""
    return [
        *newest_result_section(results, "dataset-check", "Dataset check at COCO scale", format_dataset_check),
        *image_decode_section(results),
    ]
