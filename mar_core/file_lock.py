"""An exclusive lock on a file, across processes (POSIX ``flock``), torch-free.

Used where several processes may write the same folder: the synthetic-set generator
(``mar_core.synth_once``) and the benchmark's run folders (``benchmarks.quality``).
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class LockHeld(BlockingIOError):
    """Another process holds the lock (raised only when not waiting)."""


@contextmanager
def file_lock(path: str | Path, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block.

    ``wait=True`` blocks until the holder lets go; ``wait=False`` raises ``LockHeld`` at once.
    The lock goes with the process, so a killed holder never leaves it stuck.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockHeld(str(path)) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
