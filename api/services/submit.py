"""Submitting a job: host checks, idempotency, the database row, then the Celery nudge."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.db import datasets_repo, jobs_repo, quota_repo
from api.db.models import DEFAULT_PROJECT, Job
from api.errors import Forbidden, InvalidRequest
from api.services.spec_checks import check_spec
from api.settings import Settings
from mar_core.spec import JobSpec
from mar_core.spec_hash import spec_hash

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"


def request_hash(spec: JobSpec) -> str:
    """sha256 of the validated spec as canonical JSON (key order and defaults do not matter)."""
    return spec_hash(spec.to_json_dict())


def _replay(existing: Job, digest: str) -> Job:
    if existing.request_hash != digest:
        raise InvalidRequest(
            f"{IDEMPOTENCY_HEADER}: this key was used for job {existing.id} with a different body",
            param=IDEMPOTENCY_HEADER,
        )
    return existing


def submit_job(
    session: Session,
    spec: JobSpec,
    settings: Settings,
    nudge: Callable[[str, str | None], bool],
    idempotency_key: str | None = None,
    project: str = DEFAULT_PROJECT,
    scope: str | None = DEFAULT_PROJECT,
    allow_high: bool = False,
) -> tuple[Job, bool]:
    """Create (and commit) a queued job, then nudge the broker. Returns ``(job, created)``;
    ``created`` is False when ``idempotency_key`` replays an earlier identical request of the
    same ``project`` (the job's owner). What the spec names must be visible to ``scope`` (the
    submitting key's project, or None for an admin key: every project's files). ``priority``
    "high" needs ``allow_high``; ``resources.pool`` must be one of the deployment's pools; the
    project's quota must allow one more job (``quota_repo.check_submit``: 429/409, nothing stored).

    A failed nudge is logged and the job stays queued: the reaper / ``mar up`` re-nudge it.
    """
    digest = request_hash(spec)
    if idempotency_key:
        existing = jobs_repo.get_job_by_idempotency_key(session, project, idempotency_key)
        if existing is not None:
            return _replay(existing, digest), False
    check_scheduling(spec, settings, allow_high)
    checked = check_spec(spec, settings, session, scope)
    quota_repo.check_submit(session, project)
    try:
        job = jobs_repo.create_job(
            session,
            checked,
            idempotency_key=idempotency_key,
            request_hash=digest,
            project=project,
            pool=spec.resources.pool or settings.default_pool,
        )
        if checked.dataset.id is not None and not datasets_repo.claim_for_job(session, checked.dataset.id):
            session.rollback()  # deleted since check_spec read it
            raise InvalidRequest(f"dataset.id: no dataset {checked.dataset.id}", param="dataset.id")
        session.commit()
    except IntegrityError:
        session.rollback()  # a concurrent request with the same key won the insert
        existing = (
            jobs_repo.get_job_by_idempotency_key(session, project, idempotency_key)
            if idempotency_key
            else None
        )
        if existing is None:
            raise
        return _replay(existing, digest), False
    log.info("job %s queued (%s)", job.id, job.kind)
    nudge(job.id, job.pool)
    return job, True


def check_scheduling(spec: JobSpec, settings: Settings, allow_high: bool) -> None:
    """The pool exists in this deployment; "high" priority only for a key allowed it."""
    pool = spec.resources.pool
    if pool is not None and pool not in settings.pools:
        raise InvalidRequest(
            f"resources.pool: no pool {pool!r} here; pools: {', '.join(settings.pools)}",
            param="resources.pool",
        )
    if spec.priority == "high" and not allow_high:
        raise Forbidden(
            "priority: this key may not submit high-priority jobs (ask an admin)", param="priority"
        )
