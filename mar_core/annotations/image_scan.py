"""Decode every image file of a split, in parallel processes: what the dataset check runs at
upload, at submit by path and in ``mar data check``.

Each file goes through ``mar_core.image_io.check_file`` (the loader training uses) in a pool of
``spawn``-ed processes (safe from a threaded server; each child imports only the loader). Below
``PARALLEL_MIN`` files, or with one worker, the files are decoded here: starting processes would
cost more than it saves.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from mar_core.errors import BadImageError
from mar_core.image_io import ImageFacts, check_file

log = logging.getLogger(__name__)

PARALLEL_MIN = 64  # files: fewer are decoded in this process
CHUNK = 16  # files per task sent to a worker
# progress(done, total): called as files are decoded
Progress = Callable[[int, int], None]


def default_workers() -> int:
    """The CPUs this process may run on (``MAR_CHECK_WORKERS`` overrides), at most 8."""
    env = os.environ.get("MAR_CHECK_WORKERS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(8, len(os.sched_getaffinity(0))))


def facts_or_reason(path: Path) -> ImageFacts | str:
    """``check_file(path)``, or the message of its ``BadImageError`` (picklable either way)."""
    try:
        return check_file(path)
    except BadImageError as e:
        return e.message


def scan_files(
    paths: Sequence[Path],
    workers: int | None = None,
    progress: Progress | None = None,
    parallel_min: int = PARALLEL_MIN,
) -> list[ImageFacts | str]:
    """Per path, in order: its ``ImageFacts`` (fully decoded) or why it cannot be decoded."""
    total = len(paths)
    workers = default_workers() if workers is None else max(1, workers)
    out: list[ImageFacts | str] = []
    if workers == 1 or total < parallel_min:
        results = map(facts_or_reason, paths)
        pool = None
    else:
        pool = ProcessPoolExecutor(min(workers, total), mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(facts_or_reason, paths, chunksize=CHUNK)
    try:
        for result in results:
            out.append(result)
            if progress is not None:
                progress(len(out), total)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    log.debug("decoded %d image files (%d workers)", total, 1 if pool is None else min(workers, total))
    return out
