"""A job's events (``models.Event``): written in the transaction of what they report, read in id
order (the SSE event ids). Event types of the state changes: ``status`` ``{"status", "previous",
"attempt", ...}``, ``phase`` ``{"phase"}``, ``progress`` ``{"step", "total"}``; callers add
others (``log``, ``checkpoint``, ``artifact``, ``metrics``, ``preempted`` ...)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.db.models import Event, Job, utcnow


def append_event(s: Session, job_id: str, type: str, data: Mapping[str, Any] | None = None) -> Event:
    """Add one event row (flushed, so ``id`` is set).

    The job row is touched first: that row lock orders the writers of one job, so on PostgreSQL
    event ids commit in increasing order per job and an SSE reader resuming "after id N" never
    skips an event that committed late.
    """
    s.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    ev = Event(job_id=job_id, type=type, data=dict(data or {}), created_at=utcnow())
    s.add(ev)
    s.flush()
    return ev


def get_events(s: Session, job_id: str, after_id: int | None = None, limit: int | None = None) -> list[Event]:
    """Events of a job in id order, those after ``after_id`` when given."""
    stmt = select(Event).where(Event.job_id == job_id)
    if after_id is not None:
        stmt = stmt.where(Event.id > after_id)
    stmt = stmt.order_by(Event.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(s.execute(stmt).scalars())


def last_event(s: Session, job_id: str, type: str) -> Event | None:
    """The job's latest event of ``type``, or None."""
    stmt = select(Event).where(Event.job_id == job_id, Event.type == type).order_by(Event.id.desc())
    return s.execute(stmt.limit(1)).scalars().first()
