"""Job state changes: the only writer of ``jobs.status``.

Every state change is ONE conditional ``UPDATE ... WHERE status IN (sources)`` and writes an
``Event`` row in the same transaction (the caller's session; commit with ``session_scope``).
It goes through ``change_status``: the sources come from the transition table
(``states.sources_of``), and a change from a known state is checked (``states.check_transition``,
``IllegalTransition`` before anything is written). A run on a worker that ends (any change out of
an active state) closes its run segment (``segments_repo``) in the same transaction.

Used by ``jobs_repo`` (submission and the lifecycle requests) and ``claims_repo`` (the worker's
side: claims, leases, the end of a run).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.db import segments_repo, states, webhooks_repo
from api.db.events_repo import append_event
from api.db.models import Event, Job, utcnow


def reload_job(s: Session, job_id: str) -> Job | None:
    return s.execute(
        select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
    ).scalar_one_or_none()


def conditional_update(
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


def update_fields(
    s: Session, job_id: str, among: Iterable[str], values: Mapping[str, Any], *extra_where: Any
) -> bool:
    """Update fields of a job in one of ``among`` that are not its status (lease, phase,
    progress); a status change goes through ``change_status``."""
    if "status" in values:
        raise ValueError("update_fields: a status change goes through change_status")
    return conditional_update(s, job_id, among, values, extra_where)


def change_status(
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
        raise ValueError(f"change_status: no state may go to {new}")
    ok = conditional_update(s, job_id, sources, {**values, "status": states.JobState(new).value}, extra_where)
    if ok and new not in states.ACTIVE and sources & states.ACTIVE:
        segments_repo.close_segment(s, job_id, utcnow())  # the run on a worker ended
    return ok


def status_event(
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
