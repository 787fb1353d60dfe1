"""The worker's side of a job: claims and leases (claim, running, heartbeat), the end of a run
(finish, park at a pause, release at a shutdown) and the reaper's settling of expired leases.

Each is one conditional state change (``transitions.change_status``); a worker that lost its lease
or a duplicate Celery delivery simply gets ``False`` / ``None`` back. A claim opens the job's run
segment (``segments_repo``); the change that ends the run closes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from api.db import segments_repo, states, transitions
from api.db.models import Job, utcnow

log = logging.getLogger(__name__)


def claim_job(s: Session, job_id: str, worker_id: str, lease_seconds: float) -> Job | None:
    """queued -> starting for ``worker_id``: attempt += 1, lease set. None when not queued."""
    now = utcnow()
    ok = transitions.change_status(
        s,
        job_id,
        states.STARTING,
        {
            "attempt": Job.attempt + 1,
            "worker_id": worker_id,
            "lease_expires_at": now + timedelta(seconds=lease_seconds),
            "started_at": now,
            "error": None,
        },
    )
    if not ok:
        return None
    job = transitions.reload_job(s, job_id)
    assert job is not None
    segments_repo.open_segment(s, job, now)
    transitions.status_event(
        s, job_id, states.STARTING, states.QUEUED, attempt=job.attempt, worker_id=worker_id
    )
    return job


def mark_running(s: Session, job_id: str, worker_id: str) -> bool:
    """starting -> running, only for the worker holding the job."""
    ok = transitions.change_status(s, job_id, states.RUNNING, {}, Job.worker_id == worker_id)
    if ok:
        transitions.status_event(s, job_id, states.RUNNING, states.STARTING, worker_id=worker_id)
    return ok


def heartbeat(s: Session, job_id: str, worker_id: str, lease_seconds: float) -> bool:
    """Extend the lease while this worker holds it and the job is starting/running/cancelling.

    Writes no event. False means the lease is lost (re-queued, finished, or taken over): the
    worker must stop the run.
    """
    return transitions.update_fields(
        s,
        job_id,
        states.ACTIVE,
        {"lease_expires_at": utcnow() + timedelta(seconds=lease_seconds)},
        Job.worker_id == worker_id,
    )


def release_job(s: Session, job_id: str, worker_id: str) -> bool:
    """starting/running -> queued for the worker holding the job, which is shutting down and has
    stopped its run at a checkpoint: the job is re-queued now instead of when its lease runs out.
    Always re-queued, whatever its attempt count (a deploy is not the job's failure); the next
    claim counts a new attempt and resumes from the checkpoint. False when not held by ``worker_id``."""
    current = s.execute(select(Job.status).where(Job.id == job_id)).scalar_one_or_none()
    ok = transitions.change_status(
        s,
        job_id,
        states.QUEUED,
        {"worker_id": None, "lease_expires_at": None},
        Job.worker_id == worker_id,
        sources=states.sources_of(states.QUEUED) & states.ACTIVE,  # held by it: not paused
    )
    if ok:
        transitions.status_event(
            s, job_id, states.QUEUED, current, reason="worker_shutdown", worker_id=worker_id
        )
    return ok


def park_job(s: Session, job_id: str, worker_id: str, step: int | None = None) -> bool:
    """pausing -> paused for the worker holding the job, whose run stopped at a checkpoint
    (``step``): the worker and lease are cleared and the Celery task ends. False when the job is
    not pausing for ``worker_id`` (cancelled meanwhile, lease lost)."""
    values = {"worker_id": None, "lease_expires_at": None}
    ok = transitions.change_status(
        s, job_id, states.PAUSED, values, Job.worker_id == worker_id, sources=[states.PAUSING]
    )
    if ok:
        transitions.status_event(s, job_id, states.PAUSED, states.PAUSING, worker_id=worker_id, step=step)
    return ok


def finish_job(
    s: Session, job_id: str, worker_id: str, status: str, error: Mapping[str, Any] | None = None
) -> bool:
    """starting/running/cancelling -> ``status`` (succeeded | failed | cancelled) for the worker
    holding the job; sets ``finished_at``, clears the lease. ``error`` is ``{code, message, param}``."""
    if status not in states.TERMINAL:
        raise ValueError(f"finish_job: {status!r} is not a terminal status")
    current = s.execute(select(Job.status).where(Job.id == job_id)).scalar_one_or_none()
    now = utcnow()
    ok = transitions.change_status(
        s,
        job_id,
        states.JobState(status),
        {"error": dict(error) if error else None, "finished_at": now, "lease_expires_at": None},
        Job.worker_id == worker_id,
        sources=states.sources_of(status) & states.ACTIVE,  # held by a worker: not queued
    )
    if ok:
        data: dict[str, Any] = {"worker_id": worker_id}
        if error:
            data["error"] = dict(error)
        transitions.status_event(s, job_id, status, current, **data)
    return ok


def requeue_expired(s: Session, now: datetime | None = None) -> list[str]:
    """The reaper: settle every active job whose lease expired before ``now``.

    cancelling -> cancelled; pausing -> paused; attempt < max_attempts -> queued (worker
    cleared); otherwise ->
    failed with error ``lease_expired``. Returns the ids re-queued (send each a Celery nudge).
    Each job is one conditional update that re-checks status and expiry, so a heartbeat that
    lands first wins.
    """
    now = now or utcnow()
    rows = s.execute(
        select(Job.id, Job.status, Job.attempt, Job.max_attempts, Job.worker_id)
        .where(Job.status.in_(list(states.ACTIVE)), Job.lease_expires_at < now)
        .order_by(Job.id)  # one lock order for concurrent reapers
    ).all()
    requeued: list[str] = []
    for job_id, status, attempt, max_attempts, worker_id in rows:
        expired = and_(Job.lease_expires_at < now, Job.attempt == attempt)
        lost = {"reason": "lease_expired", "worker_id": worker_id, "attempt": attempt}
        if status == states.CANCELLING:
            values = {"finished_at": now, "lease_expires_at": None}
            if transitions.change_status(s, job_id, states.CANCELLED, values, expired, sources=[status]):
                transitions.status_event(s, job_id, states.CANCELLED, status, **lost)
        elif status == states.PAUSING:  # it resumes from its last periodic checkpoint
            values = {"worker_id": None, "lease_expires_at": None}
            if transitions.change_status(s, job_id, states.PAUSED, values, expired, sources=[status]):
                transitions.status_event(s, job_id, states.PAUSED, status, **lost)
        elif attempt < max_attempts:
            values = {"worker_id": None, "lease_expires_at": None}
            if transitions.change_status(s, job_id, states.QUEUED, values, expired, sources=[status]):
                transitions.status_event(s, job_id, states.QUEUED, status, **lost)
                requeued.append(job_id)
        else:
            error = {
                "code": "lease_expired",
                "message": f"worker {worker_id} stopped heartbeating; attempt {attempt} of {max_attempts}",
                "param": None,
            }
            values = {"error": error, "finished_at": now, "lease_expires_at": None}
            if transitions.change_status(s, job_id, states.FAILED, values, expired, sources=[status]):
                transitions.status_event(s, job_id, states.FAILED, status, error=error, **lost)
    if rows:
        log.info("reaper: %d expired lease(s), %d re-queued", len(rows), len(requeued))
    return requeued


def queued_job_ids(s: Session, older_than: datetime | None = None) -> list[str]:
    """Ids of the queued jobs, oldest first (to re-send their Celery nudges); with
    ``older_than``, only those queued since before it (``updated_at`` is set by every transition)."""
    stmt = select(Job.id).where(Job.status == states.QUEUED)
    if older_than is not None:
        stmt = stmt.where(Job.updated_at < older_than)
    return list(s.execute(stmt.order_by(Job.created_at, Job.id)).scalars())


def pool_of(s: Session, job_id: str) -> str | None:
    """The pool a job waits for or runs in (None: the default pool, or no such job)."""
    return s.execute(select(Job.pool).where(Job.id == job_id)).scalar_one_or_none()
