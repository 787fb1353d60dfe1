"""Atomic file writes: the one home of "write to a temporary name, then rename".

A reader sees the old file or the whole new one, never half of one; a failed write leaves no
temporary file behind. Torch-free (the API and the client use it too).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: Path | str, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a normal exit it is renamed onto ``path``, on an
    exception it is removed. The parent folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: Path | str, data: Any, indent: int | None = 2) -> None:
    """Write ``data`` as JSON (a trailing newline) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(data, indent=indent) + "\n")
