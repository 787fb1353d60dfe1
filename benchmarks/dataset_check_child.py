"""One measurement of ``mar bench dataset-check``, run in a fresh process so that its peak
resident memory (``ru_maxrss``) is its own: ``python -m benchmarks.dataset_check_child MODE FILE``
prints ``{"seconds", "max_rss_mib", "report"}`` as JSON.

Modes: ``stream`` (``check_coco_file``, what ``inspect_dataset`` runs), ``json`` (``json.load``
and the same checks on the dict, the trainer's way of reading), ``baseline`` (the imports only).
Torch-free, so the baseline is the interpreter and the checker's imports.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from mar_core.annotations.coco_stream import check_coco_file
from mar_core.annotations.split_check import check_split_dict

MODES = ("baseline", "stream", "json")


def measure(mode: str, path: Path) -> dict:
    """Check ``path`` as ``mode`` says, image headers skipped (the images are not there)."""
    start = time.perf_counter()
    report = None
    if mode == "stream":
        report = check_coco_file(path, path.parent, "train", path.name, check_images=False)
    elif mode == "json":
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        report = check_split_dict(data, path.parent, "train", path.name, check_images=False)
    elif mode != "baseline":
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    seconds = time.perf_counter() - start
    max_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "seconds": round(seconds, 2),
        "max_rss_mib": round(max_rss_kib / 1024, 1),
        "report": report.to_dict() if report else None,
    }


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], Path(sys.argv[2]))))
