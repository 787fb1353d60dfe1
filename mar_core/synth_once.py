"""Generate a synthetic set once per folder, safely across processes.

``ensure_synthetic(out, params)`` holds ``out/.lock`` (waiting for a process that is writing the
same set), and generates only when ``out/.complete`` does not record exactly ``params``; the stamp
is written last, so an interrupted generation is redone. Used by ``mar bench`` (its cache) and
``mar demo`` (the data root).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from mar_core.file_lock import file_lock
from mar_core.synth import generate_synthetic

log = logging.getLogger(__name__)

STAMP = ".complete"


def ensure_synthetic(out: str | Path, params: dict[str, Any]) -> Path:
    """``out`` holding ``generate_synthetic(out, **params)``'s set, generated now if needed."""
    out = Path(out)
    stamp = out / STAMP
    if _stamped(stamp, params):
        return out
    with file_lock(out / ".lock"):  # another process writing this set: wait for it
        if not _stamped(stamp, params):
            log.info("generating the synthetic set %s (%s)", out, params)
            stamp.unlink(missing_ok=True)
            generate_synthetic(out, overwrite=True, **params)
            stamp.write_text(json.dumps(params, sort_keys=True))
    return out


def _stamped(stamp: Path, params: dict[str, Any]) -> bool:
    try:
        return json.loads(stamp.read_text()) == params
    except (OSError, ValueError):
        return False
