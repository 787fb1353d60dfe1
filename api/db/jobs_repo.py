"""Jobs: submission (the queued row), reads and lists, the lifecycle requests a user makes
(cancel, pause, resume, delete) and the fields a running job updates (phase, progress), and a
job's artifacts.

State changes go through ``transitions.change_status`` (the only writer of ``status``); the
worker's side (claims, leases, the end of a run) is ``claims_repo``, events ``events_repo``,
metrics ``metrics_repo``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from api.db import events_repo, states, transitions, webhooks_repo
from api.db.models import DEFAULT_PROJECT, Artifact, Job, utcnow
from api.db.paging import newest_first_page
from mar_core import names
from mar_core.spec import JobSpec

log = logging.getLogger(__name__)

_HASH_CHUNK = 1024 * 1024
DEFAULT_PROGRESS_WEBHOOK_S = 30.0


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
    transitions.status_event(s, job.id, states.QUEUED, None, attempt=0)
    return job


def get_job(s: Session, job_id: str, project: str | None = None, deleted: bool = False) -> Job | None:
    """The job with this id (fresh from the database), or None; with ``project``, None also
    when the job belongs to another project; a deleted job only with ``deleted``."""
    job = transitions.reload_job(s, job_id)
    if job is None or (project is not None and job.project != project):
        return None
    if job.deleted_at is not None and not deleted:
        return None
    return job


def get_job_by_idempotency_key(s: Session, project: str, key: str) -> Job | None:
    """The job ``project`` created with this ``Idempotency-Key``, or None."""
    scope = idempotency_scope(project, key)
    return s.execute(select(Job).where(Job.idempotency_scope == scope)).scalar_one_or_none()


def set_phase(s: Session, job_id: str, phase: str) -> bool:
    """Set ``phase`` (train, eval, export) of an active job and write a ``phase`` event."""
    ok = transitions.update_fields(s, job_id, states.ACTIVE, {"phase": phase})
    if ok:
        events_repo.append_event(s, job_id, "phase", {"phase": phase})
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
    ok = transitions.update_fields(s, job_id, states.ACTIVE, {"progress_step": step, "progress_total": total})
    if ok:
        data = {"step": step, "total": total}
        if store_event:
            events_repo.append_event(s, job_id, "progress", data)
        webhooks_repo.enqueue(s, job_id, webhooks_repo.PROGRESS, data, throttle_s=webhook_every_s)
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
            if transitions.change_status(s, job_id, states.CANCELLED, values, sources=[current]):
                transitions.status_event(s, job_id, states.CANCELLED, current, reason="cancel_requested")
                return states.CANCELLED
        else:
            values = {"cancel_requested": True}
            if transitions.change_status(s, job_id, states.CANCELLING, values, sources=[current]):
                transitions.status_event(s, job_id, states.CANCELLING, current, reason="cancel_requested")
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
                transitions.update_fields(s, job_id, [current], {"preempted_by": None})
            return states.JobState(current)
        if current == states.CANCELLING or current in states.TERMINAL:
            raise states.TransitionError(f"job {job_id} is {current}: it cannot be paused", current=current)
        new = states.PAUSED if current == states.QUEUED else states.PAUSING
        if transitions.change_status(s, job_id, new, {}, sources=[current]):
            transitions.status_event(s, job_id, new, current, reason=reason)
            return new
    raise states.TransitionError(f"job {job_id} changed state while pausing; retry", current=None)


def stop_request(s: Session, job_id: str) -> str | None:
    """What the worker running the job is asked: ``"cancel"``, ``"pause"`` or None (go on).
    One query per poll; ``"cancel"`` as ``is_cancel_requested`` says it."""
    row = s.execute(select(Job.cancel_requested, Job.status).where(Job.id == job_id)).one_or_none()
    if row is None or row.cancel_requested or row.status in (states.CANCELLING, states.CANCELLED):
        return "cancel"
    return "pause" if row.status in (states.PAUSING, states.PAUSED) else None


def resume_job(s: Session, job_id: str, reason: str = "resume_requested") -> None:
    """paused -> queued (send the job a Celery nudge after the commit); the next claim resumes
    from the checkpoint. Any other state raises ``TransitionError`` (``pausing``: not yet)."""
    current = s.execute(select(Job.status).where(Job.id == job_id)).scalar_one_or_none()
    if current is None:
        raise states.JobNotFoundError(f"job {job_id} not found", param="job_id")
    if current != states.PAUSED or not transitions.change_status(
        s, job_id, states.QUEUED, {}, sources=[current]
    ):
        why = "still pausing; retry once it is paused" if current == states.PAUSING else "not paused"
        raise states.TransitionError(f"job {job_id} is {why} ({current})", current=current)
    transitions.status_event(s, job_id, states.QUEUED, current, reason=reason)


def mark_deleted(s: Session, job_id: str) -> None:
    """Mark a finished job deleted: hidden from ``get_job`` and ``list_jobs``, its artifact rows
    dropped (the caller removes the files), its ``Idempotency-Key`` free again; the row, its
    events and metrics stay. An unfinished job raises ``TransitionError``."""
    current = s.execute(select(Job.status).where(Job.id == job_id)).scalar_one_or_none()
    if current is None:
        raise states.JobNotFoundError(f"job {job_id} not found", param="job_id")
    values = {"deleted_at": utcnow(), "idempotency_scope": None}
    if not transitions.update_fields(s, job_id, states.TERMINAL, values, Job.deleted_at.is_(None)):
        raise states.TransitionError(
            f"job {job_id} is {current}: only a finished job can be deleted (cancel it first)",
            current=current,
        )
    s.execute(delete(Artifact).where(Artifact.job_id == job_id))
    events_repo.append_event(s, job_id, "deleted", {"status": current})


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
