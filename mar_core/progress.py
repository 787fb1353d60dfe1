"""Progress events a run reports to its caller (torch-free).

``run_job(..., progress=callback)`` calls ``callback(event)`` with one of these dicts:

- ``{"type": "phase", "phase": "train" | "eval" | "export"}``
- ``{"type": "progress", "step": int, "total": int}``   (after every optimizer step)
- ``{"type": "metrics", "step": int, "values": {name: float}}``
  loss terms as ``loss/det/<name>``, ``loss/kd/<name>``, ``loss/total``; ``lr``; eval as
  ``eval/AP``, ``eval/AP50``, ... , ``eval/AP/<class>``; ``time/step_s``
- ``{"type": "checkpoint", "step": int, "path": str}``
- ``{"type": "artifact", "name": str, "path": str}``  (final outputs: ``model.pt``, ...)
- ``{"type": "log", "level": "info" | "warning", "message": str}``; a distill job's KD weights
  as one with ``"kd_weights"`` too (``mar_core.distill.auto_weights``)

``should_stop()`` is polled between steps; when it returns True the run writes a checkpoint and
raises ``mar_core.errors.JobCancelled``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ProgressEvent = dict[str, Any]
STEP_SECONDS = "time/step_s"  # the metric of one optimizer step's wall time
ProgressCallback = Callable[[ProgressEvent], None]


def ignore_progress(event: ProgressEvent) -> None:
    """The default callback: drop every event."""
