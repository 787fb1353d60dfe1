"""Service-wide read-only aggregates of the jobs table, for the Prometheus collector
(``api.monitoring.jobs_collector``): counts by state, finished jobs' durations, the workers'
leases and running jobs' step times. Nothing of a spec or a key is read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from api.db import states
from api.db.models import Job, Metric
from mar_core.progress import STEP_SECONDS


def count_by_state(s: Session) -> dict[str, int]:
    """Jobs per state, every state present (0 when none)."""
    counts = dict.fromkeys((str(st) for st in states.ALL_STATES), 0)
    counts.update(
        {status: n for status, n in s.execute(select(Job.status, func.count()).group_by(Job.status))}
    )
    return counts


def finished_durations(s: Session) -> Iterator[tuple[str, float]]:
    """``(state, seconds)`` of every finished job that started: its last attempt's run time."""
    stmt = select(Job.status, Job.started_at, Job.finished_at).where(
        Job.status.in_(sorted(states.TERMINAL)), Job.started_at.is_not(None), Job.finished_at.is_not(None)
    )
    for status, started, finished in s.execute(stmt.execution_options(yield_per=1000)):
        yield status, max((finished - started).total_seconds(), 0.0)


def worker_leases(s: Session) -> dict[str, datetime]:
    """Each worker holding a job (starting, running, cancelling): its latest lease expiry."""
    stmt = (
        select(Job.worker_id, func.max(Job.lease_expires_at))
        .where(Job.status.in_(sorted(states.ACTIVE)), Job.worker_id.is_not(None))
        .group_by(Job.worker_id)
    )
    return {worker: expiry for worker, expiry in s.execute(stmt) if expiry is not None}


def running_step_seconds(s: Session) -> dict[str, float]:
    """Each worker running a job: the job's latest step time in seconds (the ``time/step_s`` metric)."""
    latest = (
        select(Metric.job_id, func.max(Metric.step).label("step"))
        .join(Job, Job.id == Metric.job_id)
        .where(Job.status == states.RUNNING, Metric.name == STEP_SECONDS)
        .group_by(Metric.job_id)
        .subquery()
    )
    stmt = (
        select(Job.worker_id, Metric.value)
        .join(latest, and_(Metric.job_id == latest.c.job_id, Metric.step == latest.c.step))
        .join(Job, Job.id == Metric.job_id)
        .where(Metric.name == STEP_SECONDS, Job.worker_id.is_not(None))
    )
    return {worker: value for worker, value in s.execute(stmt)}
