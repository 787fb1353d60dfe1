"""How the training child tells its supervisor how the run ended.

The child writes one small JSON file, atomically (temp file + rename), just before it exits:
``{"status": "succeeded" | "failed" | "cancelled" | "skipped", "error": {code, message, param}?}``
(``api.db.states.RunOutcome``, re-exported here as the names of the protocol).
A file is robust where a pipe is not: it survives the supervisor being busy, is never mixed with
training logs, and its absence is itself the answer "the child died without a word" (killed,
segfault, out of memory). The exit code says the same thing in one byte, for humans and logs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from api.db.states import RunOutcome
from mar_core.atomic import atomic_write_text

logger = logging.getLogger(__name__)

SUCCEEDED = RunOutcome.SUCCEEDED
FAILED = RunOutcome.FAILED
CANCELLED = RunOutcome.CANCELLED
SKIPPED = RunOutcome.SKIPPED
EXIT_CODES = {SUCCEEDED: 0, FAILED: 1, CANCELLED: 3, SKIPPED: 4}


def write_result(path: Path, status: str, error: dict[str, Any] | None = None, **extra: Any) -> None:
    """Write the result file atomically."""
    atomic_write_text(path, json.dumps({"status": status, "error": error, **extra}, default=str))


def read_result(path: Path) -> dict[str, Any] | None:
    """The child's result, or None when it wrote none (or an unreadable one)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        logger.warning("unreadable result file %s: %s", path, e)
        return None
    if not isinstance(data, dict) or data.get("status") not in EXIT_CODES:
        logger.warning("malformed result file %s: %r", path, data)
        return None
    return data
