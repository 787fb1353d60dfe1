"""Per-project quotas (``models.ProjectQuota``): an admin sets them; a submit over one is refused.

- ``max_queued``: jobs of the project waiting (``queued``) at once; a submit beyond is refused
  (waiting helps: the queue drains as jobs start).
- ``gpu_hours_per_day``: GPU time used over the last 24 hours (``segments_repo``, running jobs up
  to now); a submit at or above it is refused until enough of it has left the window.
- ``max_running``: jobs of the project running at once; more wait in the queue (the claim skips
  them, ``api.db.scheduling``), so it never refuses a submit, except a limit of 0.

A refusal is ``QuotaExceededError`` (HTTP 429 with ``Retry-After``; 409 where waiting cannot help),
naming the limit and the project's current use; nothing is stored for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.db import segments_repo, states
from api.db.models import Job, ProjectQuota, utcnow
from mar_core.errors import MarError

LIMITS = ("max_running", "max_queued", "gpu_hours_per_day")
QUEUE_RETRY_SECONDS = 60  # a full queue: ask again in a minute (jobs start as workers free up)


class QuotaExceededError(MarError):
    """A submit over a project's quota; ``retry_after`` seconds (None: waiting does not help)."""

    code = "quota_exceeded"

    def __init__(self, message: str, param: str, retry_after: float | None):
        super().__init__(message, param=param)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Usage:
    """What a project uses now: jobs queued and running, GPU-hours over the last 24 hours."""

    queued: int
    running: int
    gpu_hours_per_day: float

    def as_dict(self) -> dict[str, Any]:
        return {"queued": self.queued, "running": self.running, "gpu_hours_per_day": self.gpu_hours_per_day}


def get_quota(s: Session, project: str) -> ProjectQuota | None:
    return s.get(ProjectQuota, project)


def set_quota(s: Session, project: str, **limits: float | int | None) -> ProjectQuota:
    """Set the given limits of ``project`` (None: no limit); the others keep their values."""
    unknown = set(limits) - set(LIMITS)
    if unknown:
        raise ValueError(f"unknown quota limit(s): {', '.join(sorted(unknown))}")
    row = s.get(ProjectQuota, project)
    if row is None:
        row = ProjectQuota(project=project)
        s.add(row)
    for name, value in limits.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    s.flush()
    return row


def running_counts(s: Session) -> dict[str, int]:
    """Jobs holding a worker (starting, running, cancelling, pausing) per project."""
    stmt = select(Job.project, func.count()).where(Job.status.in_(list(states.ACTIVE))).group_by(Job.project)
    return dict(s.execute(stmt).all())


def usage(s: Session, project: str, now: datetime | None = None) -> Usage:
    now = now or utcnow()
    counts = dict(
        s.execute(
            select(Job.status, func.count())
            .where(Job.project == project, Job.status.in_([states.QUEUED, *states.ACTIVE]))
            .group_by(Job.status)
        ).all()
    )
    seconds = segments_repo.usage_seconds(s, now, [project]).get(project, 0.0)
    return Usage(
        queued=int(counts.get(states.QUEUED, 0)),
        running=sum(int(n) for st, n in counts.items() if st in states.ACTIVE),
        gpu_hours_per_day=round(seconds / 3600.0, 4),
    )


def check_submit(s: Session, project: str, now: datetime | None = None) -> None:
    """Raise ``QuotaExceededError`` when one more job of ``project`` would go over its quota."""
    quota = get_quota(s, project)
    if quota is None or all(getattr(quota, name) is None for name in LIMITS):
        return
    now = now or utcnow()
    use = usage(s, project, now)
    said = f"project {project!r} uses {use.queued} queued, {use.running} running, {use.gpu_hours_per_day:g} GPU-hours in the last 24 h"
    if quota.max_running == 0:
        raise QuotaExceededError(
            f"quota max_running is 0: no job of the project may run ({said})", "quota.max_running", None
        )
    if quota.max_queued is not None and use.queued >= quota.max_queued:
        retry = QUEUE_RETRY_SECONDS if quota.max_queued > 0 else None
        raise QuotaExceededError(
            f"quota max_queued is {quota.max_queued}: the queue is full ({said})", "quota.max_queued", retry
        )
    limit = quota.gpu_hours_per_day
    if limit is not None and use.gpu_hours_per_day >= limit:
        retry: float | None = None
        if limit > 0:  # a running job keeps it up until it stops: then ask again in a minute
            wait = segments_repo.seconds_until_below(s, project, limit * 3600.0, now)
            retry = QUEUE_RETRY_SECONDS if wait is None else max(1, math.ceil(wait))
        raise QuotaExceededError(
            f"quota gpu_hours_per_day is {limit:g}: used up ({said})", "quota.gpu_hours_per_day", retry
        )
