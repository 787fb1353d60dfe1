"""Decode every image file of a split, in parallel processes: what the dataset check runs at
upload, at submit by path and in ``mar data check``.

Each file goes through ``mar_core.image_io.check_file`` (the loader training uses) in a pool of
processes forked from a ``forkserver`` (safe from a threaded server: the server process is
single-threaded, started once per process with only the loader imported, so a pool starts in
milliseconds after the first). Processes, not threads: Pillow's truncated-image option that a
repair needs is a process-wide global. Below ``PARALLEL_MIN`` files, or with one worker, the
files are decoded here: starting processes would cost more than it saves.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from mar_core.image_io import ImageFacts, facts_or_reason

log = logging.getLogger(__name__)

PARALLEL_MIN = 256  # files: fewer are decoded in this process (spawning costs ~1 s, BENCHMARKS.md)
CHUNK = 16  # files per task sent to a worker
# progress(done, total): called as files are decoded
Progress = Callable[[int, int], None]


def default_workers() -> int:
    """The CPUs this process may run on (``MAR_CHECK_WORKERS`` overrides), at most 8."""
    env = os.environ.get("MAR_CHECK_WORKERS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(8, len(os.sched_getaffinity(0))))


def _pool_context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["mar_core.image_io"])
    return ctx


def scan_files(
    paths: Sequence[Path],
    workers: int | None = None,
    progress: Progress | None = None,
    parallel_min: int = PARALLEL_MIN,
) -> list[ImageFacts | str]:
    """Per path, in order: its ``ImageFacts`` (fully decoded) or why it cannot be decoded. A pool
    that breaks (a worker killed) is logged and the remaining files are decoded here."""
    total = len(paths)
    workers = min(default_workers() if workers is None else max(1, workers), total)
    out: list[ImageFacts | str] = []

    def collect(results: Iterable[ImageFacts | str]) -> None:
        for result in results:
            out.append(result)
            if progress is not None:
                progress(len(out), total)

    if workers > 1 and total >= parallel_min:
        pool = ProcessPoolExecutor(workers, mp_context=_pool_context())
        try:
            collect(pool.map(facts_or_reason, paths, chunksize=CHUNK))
        except BrokenProcessPool as e:
            log.warning("image check: the worker pool broke (%s); decoding the rest in this process", e)
        finally:
            pool.shutdown(cancel_futures=True)
    collect(map(facts_or_reason, paths[len(out) :]))
    log.debug("decoded %d image files (%d workers)", total, workers if total >= parallel_min else 1)
    return out
