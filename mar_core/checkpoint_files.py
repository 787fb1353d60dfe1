"""Where a run keeps its training checkpoints in its work folder (torch-free: the API reads it).

``checkpoints/last.pt`` holds everything for an exact resume (rewritten atomically at every
checkpoint); ``checkpoints/best.pt`` the student weights of the best evaluation AP so far.
"""

from __future__ import annotations

from pathlib import Path

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"


def checkpoint_path(workdir: Path, which: str) -> Path:
    """``workdir/checkpoints/{which}.pt`` for ``which`` in ``last``, ``best``."""
    names = {"last": LAST_CHECKPOINT, "best": BEST_CHECKPOINT}
    return Path(workdir) / CHECKPOINT_DIR / names[which]
