"""Repository functions over jobs, events, metrics and artifacts.

Every state change is ONE conditional ``UPDATE ... WHERE status IN (sources)`` and writes an
``Event`` row in the same transaction (the caller's session; commit with ``session_scope``).
It goes through ``_change_status``, the only writer of ``status``: the sources come from the
transition table (``states.sources_of``), and a change from a known state is checked
(``states.check_transition``, ``IllegalTransition`` before anything is written).
Functions that change state report whether the change happened; a worker that lost its lease or
a duplicate Celery delivery simply gets ``False`` / ``None`` back.

Event types written here: ``status`` ``{"status", "previous", "attempt", ...}``,
``phase`` ``{"phase"}``, ``progress`` ``{"step", "total"}``. Callers may append others with
``append_event`` (``log``, ``checkpoint``, ``artifact``, ``metrics`` ...).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Row, and_, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from api.db import segments_repo, states, webhooks_repo
from api.db.models import DEFAULT_PROJECT, Artifact, Event, Job, Metric, utcnow
from api.db.paging import newest_first_page
from mar_core import names
from mar_core.spec import JobSpec

log = logging.getLogger(__name__)

_HASH_CHUNK = 1024 * 1024
DEFAULT_PROGRESS_WEBHOOK_S = 30.0


# --------------------------------------------------------------------------- helpers


def _reload(s: Session, job_id: str) -> Job | None:
    return s.execute(
        select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _conditional_update(
    s: Session, job_id: str, among: Iterable[str], values: Mapping[str, Any], extra_where: tuple[Any, ...]
) -> bool:
    """``UPDATE jobs SET values WHERE id = job_id AND status IN among AND extra_where``."""
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.status.in_(sorted(among)), *extra_where)
        .values(updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    return s.execute(stmt).rowcount == 1


def _update(
    s: Session, job_id: str, among: Iterable[str], values: Mapping[str, Any], *extra_where: Any
) -> bool:
    """Update fields of a job in one of ``among`` that are not its status (lease, phase,
    progress); a status change goes through ``_change_status``."""
    if "status" in values:
        raise ValueError("_update: a status change goes through _change_status")
    return _conditional_update(s, job_id, among, values, extra_where)


def _change_status(
    s: Session,
    job_id: str,
    new: states.JobState,
    values: Mapping[str, Any],
    *extra_where: Any,
    sources: Iterable[str] | None = None,
) -> bool:
    """Move the job to ``new`` if it is in one of ``sources`` (and ``extra_where`` holds).

    ``sources`` defaults to every state ``new`` may be entered from (``states.sources_of``);
    given ones (e.g. the status just read) must each be allowed to go to ``new``, or
    ``states.IllegalTransition`` is raised before anything is written."""
    if sources is None:
        sources = states.sources_of(new)
    else:
        sources = frozenset(sources)
        for src in sources:
            states.check_transition(src, new)
    if not sources:
        raise ValueError(f"_change_status: no state may go to {new}")
    ok = _conditional_update(
        s, job_id, sources, {**values, "status": states.JobState(new).value}, extra_where
    )
    if ok and new not in states.ACTIVE and sources & states.ACTIVE:
        segments_repo.close_segment(s, job_id, utcnow())  # the run on a worker ended
    return ok


def _status_event(
    s: Session, job_id: str, status: str, previous: str | Iterable[str] | None, **data: Any
) -> Event:
    """The ``status`` event of a change; a terminal one also queues the job's webhooks
    (``job.succeeded`` / ``job.failed`` / ``job.cancelled``) in the same transaction."""
    prev = previous if isinstance(previous, str) or previous is None else sorted(previous)
    event = append_event(s, job_id, "status", {"status": status, "previous": prev, **data})
    if status in states.TERMINAL:
        told = {k: v for k, v in data.items() if k == "error"}
        webhooks_repo.enqueue(s, job_id, f"job.{status}", {"status": str(status), **told})
    return event


# --------------------------------------------------------------------------- jobs


def idempotency_scope(project: str, key: str) -> str:
    """The stored form of an ``Idempotency-Key``: unique per project, not across the service."""
    return hashlib.sha256(f"{project}\x00{key}".encode()).hexdigest()


def create_job(
    s: Session,
    spec: JobSpec,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    project: str = DEFAULT_PROJECT,
    pool: str | None = None,
) -> Job:
    """Insert a queued job of ``project`` for ``spec`` (flushed, not committed) and its first event;
    ``pool``: the worker pool it waits for (default: the spec's ``resources.pool``).

    A second job of the project with the same ``idempotency_key`` raises
    ``sqlalchemy.exc.IntegrityError`` at flush; look it up first with ``get_job_by_idempotency_key``.
    """
    now = utcnow()
    job = Job(
        name=spec.name,
        kind=spec.kind,
        spec=spec.to_json_dict(),
        status=states.QUEUED,
        attempt=0,
        max_attempts=spec.max_attempts,
        cancel_requested=False,
        project=project,
        idempotency_scope=idempotency_scope(project, idempotency_key) if idempotency_key else None,
        request_hash=request_hash,
        created_at=now,
        updated_at=now,
        dataset_id=spec.dataset.id,
        webhook_secret=webhooks_repo.new_secret() if spec.webhooks else None,
        pool=pool or spec.resources.pool,
        priority=names.PRIORITIES.index(spec.priority),
    )
    s.add(job)
    s.flush()
    _status_event(s, job.id, states.QUEUED, None, attempt=0)
    return job


def get_job(s: Session, job_id: str, project: str | None = None, deleted: bool = False) -> Job | None:
    """The job with this id (fresh from the database), or None; with ``project``, None also
    when the job belongs to another project; a deleted job only with ``deleted``."""
    job = _reload(s, job_id)
    if job is None or (project is not None and job.project != project):
        return None
    if job.deleted_at is not None and not deleted:
        return None
    return job


def get_job_by_idempotency_key(s: Session, project: str, key: str) -> Job | None:
    """The job ``project`` created with this ``Idempotency-Key``, or None."""
    scope = idempotency_scope(project, key)
    return s.execute(select(Job).where(Job.idempotency_scope == scope)).scalar_one_or_none()


def claim_job(s: Session, job_id: str, worker_id: str, lease_seconds: float) -> Job | None:
    """queued -> starting for ``worker_id``: attempt += 1, lease set. None when not queued."""
    now = utcnow()
    ok = _change_status(
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
    job = _reload(s, job_id)
    assert job is not None
    segments_repo.open_segment(s, job, now)
    _status_event(s, job_id, states.STARTING, states.QUEUED, attempt=job.attempt, worker_id=worker_id)
    return job


def mark_running(s: Session, job_id: str, worker_id: str) -> bool:
    """starting -> running, only for the worker holding the job."""
    ok = _change_status(s, job_id, states.RUNNING, {}, Job.worker_id == worker_id)
    if ok:
        _status_event(s, job_id, states.RUNNING, states.STARTING, worker_id=worker_id)
    return ok


def heartbeat(s: Session, job_id: str, worker_id: str, lease_seconds: float) -> bool:
    """Extend the lease while this worker holds it and the job is starting/running/cancelling.

    Writes no event. False means the lease is lost (re-queued, finished, or taken over): the
    worker must stop the run.
    """
    return _update(
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
    ok = _change_status(
        s,
        job_id,
        states.QUEUED,
        {"worker_id": None, "lease_expires_at": None},
        Job.worker_id == worker_id,
        sources=states.sources_of(states.QUEUED) & states.ACTIVE,  # held by it: not paused
    )
    if ok:
        _status_event(s, job_id, states.QUEUED, current, reason="worker_shutdown", worker_id=worker_id)
    return ok


def set_phase(s: Session, job_id: str, phase: str) -> bool:
    """Set ``phase`` (train, eval, export) of an active job and write a ``phase`` event."""
    ok = _update(s, job_id, states.ACTIVE, {"phase": phase})
    if ok:
        append_event(s, job_id, "phase", {"phase": phase})
    return ok


def set_progress(
    s: Session,
    job_id: str,
    step: int,
    total: int,
    webhook_every_s: float = DEFAULT_PROGRESS_WEBHOOK_S,
    *,
    store_event: bool = True,
) -> bool:
    """Record progress of an active job on its row (what the event stream sends live); write a
    ``progress`` event row when ``store_event`` (callers store milestones only); queue a
    ``job.progress`` webhook at most every ``webhook_every_s`` seconds per job."""
    ok = _update(s, job_id, states.ACTIVE, {"progress_step": step, "progress_total": total})
    if ok:
        data = {"step": step, "total": total}
        if store_event:
            append_event(s, job_id, "progress", data)
        webhooks_repo.enqueue(s, job_id, webhooks_repo.PROGRESS, data, throttle_s=webhook_every_s)
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
    ok = _change_status(
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
        _status_event(s, job_id, status, current, **data)
    return ok


def request_cancel(s: Session, job_id: str) -> str:
    """Ask a job to stop; returns the status it is now in.

    queued/paused -> cancelled at once; starting/running/pausing -> cancelling
    (``cancel_requested`` set; the worker sees it via ``is_cancel_requested`` and finishes as
    cancelled); cancelling stays.
    Terminal raises ``TransitionError``; an unknown id raises ``JobNotFoundError``.
    """
    for _ in range(5):  # the status may change under us: re-read and retry
        current = s.execute(select(Job.status).where(Job.id == job_id)).scalar_one_or_none()
        if current is None:
            raise states.JobNotFoundError(f"job {job_id} not found", param="job_id")
        if current in states.TERMINAL:
            raise states.TransitionError(f"job {job_id} is already {current}", current=current)
        if current == states.CANCELLING:
            return states.CANCELLING
        if current in (states.QUEUED, states.PAUSED):
            values = {"cancel_requested": True, "finished_at": utcnow(), "lease_expires_at": None}
            if _change_status(s, job_id, states.CANCELLED, values, sources=[current]):
                _status_event(s, job_id, states.CANCELLED, current, reason="cancel_requested")
                return states.CANCELLED
        else:
            values = {"cancel_requested": True}
            if _change_status(s, job_id, states.CANCELLING, values, sources=[current]):
                _status_event(s, job_id, states.CANCELLING, current, reason="cancel_requested")
                return states.CANCELLING
    raise states.TransitionError(f"job {job_id} changed state while cancelling; retry", current=None)


def is_cancel_requested(s: Session, job_id: str) -> bool:
    """Whether the job was asked to stop (or is no longer active)."""
    row = s.execute(select(Job.cancel_requested, Job.status).where(Job.id == job_id)).one_or_none()
    if row is None:
        return True
    return bool(row.cancel_requested) or row.status in (states.CANCELLING, states.CANCELLED)


def request_pause(s: Session, job_id: str, reason: str = "pause_requested") -> str:
    """Ask a job to pause; returns the status it is now in.

    queued -> paused at once; starting/running -> pausing (the worker sees it via
    ``stop_request``, stops the run at a checkpoint and calls ``park_job``); pausing and paused
    stay. Cancelling or terminal raises ``TransitionError``; an unknown id ``JobNotFoundError``."""
    for _ in range(5):  # the status may change under us: re-read and retry
        current = s.execute(select(Job.status).where(Job.id == job_id)).scalar_one_or_none()
        if current is None:
            raise states.JobNotFoundError(f"job {job_id} not found", param="job_id")
        if current in (states.PAUSING, states.PAUSED):
            if reason == "pause_requested":  # the user's pause holds: not resumed after a preemption
                _update(s, job_id, [current], {"preempted_by": None})
            return states.JobState(current)
        if current == states.CANCELLING or current in states.TERMINAL:
            raise states.TransitionError(f"job {job_id} is {current}: it cannot be paused", current=current)
        new = states.PAUSED if current == states.QUEUED else states.PAUSING
        if _change_status(s, job_id, new, {}, sources=[current]):
            _status_event(s, job_id, new, current, reason=reason)
            return new
    raise states.TransitionError(f"job {job_id} changed state while pausing; retry", current=None)


def stop_request(s: Session, job_id: str) -> str | None:
    """What the worker running the job is asked: ``"cancel"``, ``"pause"`` or None (go on).
    One query per poll; ``"cancel"`` as ``is_cancel_requested`` says it."""
    row = s.execute(select(Job.cancel_requested, Job.status).where(Job.id == job_id)).one_or_none()
    if row is None or row.cancel_requested or row.status in (states.CANCELLING, states.CANCELLED):
        return "cancel"
    return "pause" if row.status in (states.PAUSING, states.PAUSED) else None


def park_job(s: Session, job_id: str, worker_id: str, step: int | None = None) -> bool:
    """pausing -> paused for the worker holding the job, whose run stopped at a checkpoint
    (``step``): the worker and lease are cleared and the Celery task ends. False when the job is
    not pausing for ``worker_id`` (cancelled meanwhile, lease lost)."""
    values = {"worker_id": None, "lease_expires_at": None}
    ok = _change_status(
        s, job_id, states.PAUSED, values, Job.worker_id == worker_id, sources=[states.PAUSING]
    )
    if ok:
        _status_event(s, job_id, states.PAUSED, states.PAUSING, worker_id=worker_id, step=step)
    return ok


def resume_job(s: Session, job_id: str, reason: str = "resume_requested") -> None:
    """paused -> queued (send the job a Celery nudge after the commit); the next claim resumes
    from the checkpoint. Any other state raises ``TransitionError`` (``pausing``: not yet)."""
    current = s.execute(select(Job.status).where(Job.id == job_id)).scalar_one_or_none()
    if current is None:
        raise states.JobNotFoundError(f"job {job_id} not found", param="job_id")
    if current != states.PAUSED or not _change_status(s, job_id, states.QUEUED, {}, sources=[current]):
        why = "still pausing; retry once it is paused" if current == states.PAUSING else "not paused"
        raise states.TransitionError(f"job {job_id} is {why} ({current})", current=current)
    _status_event(s, job_id, states.QUEUED, current, reason=reason)


def mark_deleted(s: Session, job_id: str) -> None:
    """Mark a finished job deleted: hidden from ``get_job`` and ``list_jobs``, its artifact rows
    dropped (the caller removes the files), its ``Idempotency-Key`` free again; the row, its
    events and metrics stay. An unfinished job raises ``TransitionError``."""
    current = s.execute(select(Job.status).where(Job.id == job_id)).scalar_one_or_none()
    if current is None:
        raise states.JobNotFoundError(f"job {job_id} not found", param="job_id")
    values = {"deleted_at": utcnow(), "idempotency_scope": None}
    if not _update(s, job_id, states.TERMINAL, values, Job.deleted_at.is_(None)):
        raise states.TransitionError(
            f"job {job_id} is {current}: only a finished job can be deleted (cancel it first)",
            current=current,
        )
    s.execute(delete(Artifact).where(Artifact.job_id == job_id))
    append_event(s, job_id, "deleted", {"status": current})


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
            if _change_status(s, job_id, states.CANCELLED, values, expired, sources=[status]):
                _status_event(s, job_id, states.CANCELLED, status, **lost)
        elif status == states.PAUSING:  # it resumes from its last periodic checkpoint
            values = {"worker_id": None, "lease_expires_at": None}
            if _change_status(s, job_id, states.PAUSED, values, expired, sources=[status]):
                _status_event(s, job_id, states.PAUSED, status, **lost)
        elif attempt < max_attempts:
            values = {"worker_id": None, "lease_expires_at": None}
            if _change_status(s, job_id, states.QUEUED, values, expired, sources=[status]):
                _status_event(s, job_id, states.QUEUED, status, **lost)
                requeued.append(job_id)
        else:
            error = {
                "code": "lease_expired",
                "message": f"worker {worker_id} stopped heartbeating; attempt {attempt} of {max_attempts}",
                "param": None,
            }
            values = {"error": error, "finished_at": now, "lease_expires_at": None}
            if _change_status(s, job_id, states.FAILED, values, expired, sources=[status]):
                _status_event(s, job_id, states.FAILED, status, error=error, **lost)
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


def list_jobs(
    s: Session,
    status: str | Iterable[str] | None = None,
    limit: int = 50,
    cursor: str | None = None,
    project: str | None = None,
) -> tuple[list[Job], str | None]:
    """Jobs newest first (of ``project`` only, when given; deleted ones never), ``limit`` per page; returns
    ``(jobs, next_cursor)`` (None on the last page). Keyset pagination on ``(created_at, id)``."""
    stmt = select(Job).where(Job.deleted_at.is_(None))
    if project is not None:
        stmt = stmt.where(Job.project == project)
    if status:
        wanted = [status] if isinstance(status, str) else list(status)
        stmt = stmt.where(Job.status.in_(wanted))
    return newest_first_page(s, stmt, Job, limit, cursor)


# --------------------------------------------------------------------------- events


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


# --------------------------------------------------------------------------- metrics


def _insert_for(s: Session):
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql_insert
    if dialect == "sqlite":
        return sqlite_insert
    # only SQLite and PostgreSQL are supported
    raise NotImplementedError(f"metrics upsert: unsupported dialect {dialect}")


def append_metrics(
    s: Session, job_id: str, step: int, values: Mapping[str, float], time: datetime | None = None
) -> None:
    """Store ``values`` at ``step``; an existing (job, name, step) is overwritten (upsert).
    Non-finite values are left out with a warning (SQLite cannot store NaN; the job's failure
    message, not its series, says that a loss diverged)."""
    bad = sorted(k for k, v in values.items() if not math.isfinite(float(v)))
    if bad:
        log.warning("job %s step %d: non-finite metric(s) not stored: %s", job_id, step, ", ".join(bad))
    when = time or utcnow()
    rows = [
        {"job_id": job_id, "name": k, "step": int(step), "value": float(v), "time": when}
        for k, v in values.items()
        if k not in bad
    ]
    if not rows:
        return
    insert = _insert_for(s)
    stmt = insert(Metric).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[Metric.job_id, Metric.name, Metric.step],
        set_={"value": stmt.excluded.value, "time": stmt.excluded.time},
    )
    s.execute(stmt)
    s.execute(update(Job).where(Job.id == job_id).values(metrics_rev=Job.metrics_rev + 1))


def get_metrics(
    s: Session,
    job_id: str,
    names: Iterable[str] | None = None,
    since_step: int | None = None,
    with_time: bool = True,
) -> list[Row[Any]]:
    """``(name, step, value, time)`` rows (``(name, step, value)`` without ``with_time``) ordered
    by (name, step); ``since_step`` is inclusive. Plain column tuples, not ORM objects: a
    10,000-point series is read ~3x faster; leaving the time out saves parsing 10,000 datetimes."""
    columns = (Metric.name, Metric.step, Metric.value, *((Metric.time,) if with_time else ()))
    stmt = select(*columns).where(Metric.job_id == job_id)
    if names:
        stmt = stmt.where(Metric.name.in_(list(names)))
    if since_step is not None:
        stmt = stmt.where(Metric.step >= since_step)
    return list(s.execute(stmt.order_by(Metric.name, Metric.step)).all())


def best_metric(s: Session, job_id: str, name: str) -> tuple[int, float] | None:
    """``(step, value)`` of the highest value of a series (the earliest step on a tie), or None."""
    stmt = select(Metric.step, Metric.value).where(Metric.job_id == job_id, Metric.name == name)
    row = s.execute(stmt.order_by(Metric.value.desc(), Metric.step).limit(1)).first()
    return None if row is None else (int(row.step), float(row.value))


def metric_value(s: Session, job_id: str, name: str, step: int) -> float | None:
    """One point of a series, or None."""
    stmt = select(Metric.value).where(Metric.job_id == job_id, Metric.name == name, Metric.step == step)
    return s.execute(stmt).scalar_one_or_none()


# --------------------------------------------------------------------------- artifacts


def file_digest(path: str | Path) -> tuple[int, str]:
    """``(size, sha256 hex)`` of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def add_artifact(s: Session, job_id: str, name: str, path: str | Path) -> Artifact:
    """Record (or re-record, after a resumed run re-exports) a job's output file."""
    p = Path(path).resolve()
    size, digest = file_digest(p)
    art = s.execute(
        select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name)
    ).scalar_one_or_none()
    if art is None:
        art = Artifact(job_id=job_id, name=name, path=str(p), size=size, sha256=digest, created_at=utcnow())
        s.add(art)
    else:
        art.path, art.size, art.sha256, art.created_at = str(p), size, digest, utcnow()
    s.flush()
    return art


def list_artifacts(s: Session, job_id: str) -> list[Artifact]:
    """A job's artifacts by name."""
    return list(
        s.execute(select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.name)).scalars()
    )


def get_artifact(s: Session, job_id: str, name: str) -> Artifact | None:
    """One artifact of a job by name, or None."""
    return s.execute(
        select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name)
    ).scalar_one_or_none()
