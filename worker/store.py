"""The worker's view of the job table: one short transaction per call to ``api.db.jobs_repo``.

The supervisor talks to this small interface, not to SQLAlchemy, so its process logic can be
tested with an in-memory stand-in. Only ids and plain values cross it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from api.db import claims_repo, events_repo, jobs_repo, scheduling
from api.db.session import session_scope

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """What the supervisor needs to know about a job it just claimed."""

    job_id: str
    attempt: int
    max_attempts: int


class JobStore(Protocol):
    def claim(self, job_id: str, worker_id: str, lease_seconds: float) -> Claim | None: ...

    def claim_next(
        self, pool: str, default_pool: str, worker_id: str, lease_seconds: float
    ) -> Claim | None: ...

    def heartbeat(self, job_id: str, worker_id: str, lease_seconds: float) -> bool: ...

    def cancel_requested(self, job_id: str) -> bool: ...

    def stop_requested(self, job_id: str) -> str | None: ...

    def park(self, job_id: str, worker_id: str) -> bool: ...

    def finish(self, job_id: str, worker_id: str, status: str, error: dict | None = None) -> bool: ...

    def release(self, job_id: str, worker_id: str) -> bool: ...

    def event(self, job_id: str, type: str, data: dict[str, Any]) -> None: ...


class DbJobStore:
    """``JobStore`` backed by the service database (``api.db``)."""

    def __init__(self, session_factory):
        self._sf = session_factory

    def _scope(self):
        return session_scope(self._sf)

    def claim(self, job_id: str, worker_id: str, lease_seconds: float) -> Claim | None:
        with self._scope() as s:
            job = claims_repo.claim_job(s, job_id, worker_id, lease_seconds)
            if job is None:
                return None
            return Claim(job_id=job.id, attempt=job.attempt, max_attempts=job.max_attempts)

    def claim_next(self, pool: str, default_pool: str, worker_id: str, lease_seconds: float) -> Claim | None:
        """Claim the first job of ``pool``'s order (``api.db.scheduling``), whichever message came."""
        with self._scope() as s:
            job = scheduling.claim_next(s, pool, default_pool, worker_id, lease_seconds)
            if job is None:
                return None
            return Claim(job_id=job.id, attempt=job.attempt, max_attempts=job.max_attempts)

    def first_released(self, pool: str, default_pool: str) -> str | None:
        """The first job of ``pool`` that may start now and whose project has a ``max_running``
        quota (its message may have been spent while the quota held it), or None."""
        with self._scope() as s:
            return scheduling.first_capped_ready(s, pool, default_pool)

    def heartbeat(self, job_id: str, worker_id: str, lease_seconds: float) -> bool:
        with self._scope() as s:
            return bool(claims_repo.heartbeat(s, job_id, worker_id, lease_seconds))

    def cancel_requested(self, job_id: str) -> bool:
        with self._scope() as s:
            return bool(jobs_repo.is_cancel_requested(s, job_id))

    def stop_requested(self, job_id: str) -> str | None:
        with self._scope() as s:
            return jobs_repo.stop_request(s, job_id)

    def park(self, job_id: str, worker_id: str) -> bool:
        with self._scope() as s:
            return bool(claims_repo.park_job(s, job_id, worker_id))

    def finish(self, job_id: str, worker_id: str, status: str, error: dict | None = None) -> bool:
        with self._scope() as s:
            return bool(claims_repo.finish_job(s, job_id, worker_id, status, error=error))

    def release(self, job_id: str, worker_id: str) -> bool:
        with self._scope() as s:
            return bool(claims_repo.release_job(s, job_id, worker_id))

    def event(self, job_id: str, type: str, data: dict[str, Any]) -> None:
        with self._scope() as s:
            events_repo.append_event(s, job_id, type, data)
