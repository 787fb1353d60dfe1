"""Run segments: each stretch of a job on a worker (``models.RunSegment``), and what they add up
to: a project's GPU time over a window (quotas, fair share) and a pool's measured step rate.

``jobs_repo`` opens a segment when a worker claims a job and closes it in the same transaction
as the status change that ends the run, so the sums never miss a run or count one twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from api.db.models import Job, RunSegment

USAGE_WINDOW = timedelta(hours=24)  # "GPU-hours per rolling day"; also fair share's "recently"


def in_pool(column: Any, pool: str, default_pool: str) -> Any:
    """Rows whose pool ``column`` is ``pool`` (None, from before pools, is the default pool)."""
    return or_(column == pool, column.is_(None)) if pool == default_pool else column == pool


def open_segment(s: Session, job: Job, now: datetime) -> None:
    """A segment for ``job``, claimed at ``now`` (flushed with the caller's transaction)."""
    gpus = int((job.spec.get("resources") or {}).get("gpus", 1))
    s.add(
        RunSegment(
            job_id=job.id,
            project=job.project,
            pool=job.pool,
            gpus=gpus,
            start_step=job.progress_step or 0,
            started_at=now,
        )
    )
    s.flush()


def close_segment(s: Session, job_id: str, now: datetime) -> None:
    """Close the job's open segment (if any) at ``now`` with the job's progress as its end step."""
    step = select(Job.progress_step).where(Job.id == job_id).scalar_subquery()
    s.execute(
        update(RunSegment)
        .where(RunSegment.job_id == job_id, RunSegment.ended_at.is_(None))
        .values(ended_at=now, end_step=step)
        .execution_options(synchronize_session=False)
    )


def _seconds_in(seg_start: datetime, seg_end: datetime | None, since: datetime, now: datetime) -> float:
    start, end = max(seg_start, since), min(seg_end or now, now)
    return max(0.0, (end - start).total_seconds())


def usage_seconds(
    s: Session, now: datetime, projects: Iterable[str] | None = None, window: timedelta = USAGE_WINDOW
) -> dict[str, float]:
    """GPU-seconds each project used in ``(now - window, now]``: every segment's overlap with
    the window times its GPUs, running ones up to ``now``. Projects without use are absent."""
    since = now - window
    stmt = select(RunSegment.project, RunSegment.gpus, RunSegment.started_at, RunSegment.ended_at).where(
        or_(RunSegment.ended_at.is_(None), RunSegment.ended_at > since)
    )
    if projects is not None:
        stmt = stmt.where(RunSegment.project.in_(sorted(set(projects))))
    used: dict[str, float] = {}
    for project, gpus, start, end in s.execute(stmt):
        used[project] = used.get(project, 0.0) + gpus * _seconds_in(start, end, since, now)
    return used


def seconds_until_below(
    s: Session, project: str, limit_seconds: float, now: datetime, window: timedelta = USAGE_WINDOW
) -> float | None:
    """How long until ``project``'s use over the window drops below ``limit_seconds`` if nothing
    new starts; None when it never does (a running segment alone holds it at or above)."""
    since = now - window
    rows = s.execute(
        select(RunSegment.gpus, RunSegment.started_at, RunSegment.ended_at).where(
            RunSegment.project == project, or_(RunSegment.ended_at.is_(None), RunSegment.ended_at > since)
        )
    ).all()

    def used_at(t: datetime) -> float:
        return sum(g * _seconds_in(a, b if b is not None else t, t - window, t) for g, a, b in rows)

    # a finished segment has left the window entirely at its end + window: try those instants in
    # order, then find the first second it drops below by bisection (running ones keep counting)
    for t in sorted({b + window for _, _, b in rows if b is not None}):
        if t > now and used_at(t) < limit_seconds:
            lo, hi = now, t  # the first instant in (lo, hi] where it drops: bisect to a second
            while (hi - lo).total_seconds() > 1:
                mid = lo + (hi - lo) / 2
                lo, hi = (lo, mid) if used_at(mid) < limit_seconds else (mid, hi)
            return (hi - now).total_seconds()
    return None


def step_seconds(s: Session, pool: str | None, default_pool: str, now: datetime) -> float | None:
    """Seconds per training step in ``pool`` over the window: the segments' seconds over their
    steps (running ones up to the job's live progress); None when nothing was measured yet."""
    since = now - USAGE_WINDOW
    pool_is = in_pool(RunSegment.pool, pool, default_pool)
    rows = s.execute(
        select(
            RunSegment.started_at,
            RunSegment.ended_at,
            RunSegment.start_step,
            func.coalesce(RunSegment.end_step, Job.progress_step),
        )
        .join(Job, Job.id == RunSegment.job_id)
        .where(pool_is, or_(RunSegment.ended_at.is_(None), RunSegment.ended_at > since))
    ).all()
    seconds = steps = 0.0
    for start, end, first, last in rows:
        if last is not None and last > first:
            seconds += _seconds_in(start, end, start, now)
            steps += last - first
    return seconds / steps if steps else None
