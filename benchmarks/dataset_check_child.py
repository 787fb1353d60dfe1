"""One measurement of ``mar bench dataset-check``, run in a fresh process so that its peak
resident memory is its own: ``python -m benchmarks.dataset_check_child MODE FILE`` prints
``{"seconds", "max_rss_mib", "report"}`` as JSON. The peak is ``VmHWM`` of ``/proc/self/status``
(``ru_maxrss`` would not do: Linux carries it over from the parent forked, torch loaded).

Modes: ``stream`` (``check_coco_file``, what ``inspect_dataset`` runs), ``json`` (``json.load``
and the same checks on the dict, the trainer's way of reading), ``baseline`` (the imports only).
Torch-free, so the baseline is the interpreter and the checker's imports.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from mar_core.annotations.coco_stream import check_coco_file
from mar_core.annotations.split_check import check_split_dict

MODES = ("baseline", "stream", "json")


def peak_rss_kib() -> int:
    """This process's peak resident set size in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


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
    return {
        "seconds": round(seconds, 2),
        "max_rss_mib": round(peak_rss_kib() / 1024, 1),
        "report": report.to_dict() if report else None,
    }


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], Path(sys.argv[2]))))
