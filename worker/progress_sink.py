"""The training child's progress callback: ``mar_core`` progress events -> database rows.

Events are buffered and written in ONE transaction per flush: at most every ``flush_seconds``
(metrics, the latest progress), at once for the rare events a follower wants to see now
(phase, checkpoint, artifact, warnings). Progress goes to the job's row
(``progress_step``/``progress_total``, which the event stream sends live) at most once per flush;
a ``progress`` event row is stored at milestones only (``ProgressMilestones``: every 1% of the
schedule, at least once a minute, and the last step), so a 12-hour schedule stores a few
hundred rows for a client paging through the job's history, not one per second.

A database hiccup does not stop training: the buffer is kept and retried at the next flush
(metrics are bounded; the oldest are dropped past ``max_buffered``). ``close()`` is the last
flush and raises if the database stays unreachable, because the final artifacts must be
registered for the job to be usable.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from api.db import events_repo, jobs_repo, metrics_repo
from api.db.session import session_scope
from mar_core.progress import ProgressEvent

logger = logging.getLogger(__name__)

# Event types written to the events table as they are (besides phase/progress/artifact).
_PASS_THROUGH = ("checkpoint", "log")


class ProgressMilestones:
    """Which progress updates are stored as event rows: the first, each one that enters a new
    ``1 / parts`` of the schedule, one at least every ``every_seconds``, and the last step."""

    def __init__(self, parts: int = 100, every_seconds: float = 60.0):
        self.parts, self.every_seconds = parts, every_seconds
        self._part: int | None = None
        self._at: float | None = None

    def _part_of(self, step: int, total: int) -> int:
        return step * self.parts // total if total > 0 else 0

    def due(self, step: int, total: int, now: float) -> bool:
        return (
            self._part is None
            or self._part_of(step, total) > self._part
            or step >= total > 0
            or now - (self._at or 0.0) >= self.every_seconds
        )

    def stored(self, step: int, total: int, now: float) -> None:
        """The update at ``step`` was stored as an event row."""
        self._part, self._at = self._part_of(step, total), now


class DbProgressSink:
    """Callable progress sink for one job (``run_job(progress=sink)``)."""

    def __init__(
        self,
        session_factory,
        job_id: str,
        *,
        flush_seconds: float = 1.0,
        max_buffered: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
        progress_webhook_seconds: float = jobs_repo.DEFAULT_PROGRESS_WEBHOOK_S,
    ):
        self._sf = session_factory
        self.job_id = job_id
        self.flush_seconds = flush_seconds
        self.progress_webhook_seconds = progress_webhook_seconds
        self._clock = clock
        self._metrics: deque[tuple[int, dict[str, float], datetime]] = deque(maxlen=max_buffered)
        self._events: list[tuple[str, dict[str, Any]]] = []
        self._phases: list[str] = []
        self._artifacts: list[tuple[str, str]] = []
        self._progress: tuple[int, int] | None = None
        self.milestones = ProgressMilestones()
        self._last_flush = clock()
        self.artifacts: dict[str, str] = {}  # every artifact registered so far (name -> path)

    def __call__(self, event: ProgressEvent) -> None:
        kind = event.get("type")
        urgent = False
        if kind == "metrics":
            values = {k: float(v) for k, v in (event.get("values") or {}).items()}
            self._metrics.append((int(event["step"]), values, datetime.now(timezone.utc)))
        elif kind == "progress":
            self._progress = (int(event["step"]), int(event["total"]))
        elif kind == "phase":
            self._phases.append(str(event["phase"]))
            urgent = True
        elif kind == "artifact":
            self._artifacts.append((str(event["name"]), str(event["path"])))
            self._events.append(("artifact", {"name": event["name"], "path": str(event["path"])}))
            urgent = True
        elif kind in _PASS_THROUGH:
            self._events.append((kind, {k: v for k, v in event.items() if k != "type"}))
            urgent = kind == "checkpoint" or event.get("level") == "warning"
        else:
            logger.debug("ignoring progress event of unknown type %r", kind)
            return
        if urgent or self._clock() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self, *, raise_errors: bool = False) -> None:
        """Write everything buffered in one transaction; keep it for a retry on error."""
        now = self._last_flush = self._clock()
        if not (self._metrics or self._events or self._phases or self._artifacts or self._progress):
            return
        milestone = self._progress is not None and self.milestones.due(*self._progress, now)
        try:
            with session_scope(self._sf) as s:
                for step, values, when in self._metrics:
                    metrics_repo.append_metrics(s, self.job_id, step, values, time=when)
                for phase in self._phases:
                    jobs_repo.set_phase(s, self.job_id, phase)
                for kind, data in self._events:
                    events_repo.append_event(s, self.job_id, kind, data)
                if self._progress is not None:
                    jobs_repo.set_progress(
                        s,
                        self.job_id,
                        *self._progress,
                        webhook_every_s=self.progress_webhook_seconds,
                        store_event=milestone,
                    )
                for name, path in self._artifacts:
                    jobs_repo.add_artifact(s, self.job_id, name, Path(path))
        except Exception:
            if raise_errors:
                raise
            logger.exception("job %s: progress flush failed; will retry", self.job_id)
            return
        if milestone:
            self.milestones.stored(*self._progress, now)
        self.artifacts.update(self._artifacts)
        self._metrics.clear()
        self._events.clear()
        self._phases.clear()
        self._artifacts.clear()
        self._progress = None

    def close(self, retries: int = 5, delay: float = 1.0) -> None:
        """The final flush: retried, then raises if the database stays unreachable."""
        for attempt in range(retries):
            try:
                self.flush(raise_errors=True)
                return
            except Exception:
                if attempt == retries - 1:
                    raise
                logger.warning("job %s: final flush failed, retrying in %.0f s", self.job_id, delay)
                time.sleep(delay)
