"""Helpers of the repository tests (``test_repo``, ``test_claims_repo``, ``test_metrics_repo``)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from api.db import events_repo
from api.db import jobs_repo as repo
from api.db.session import session_scope
from mar_core.spec import JobSpec

SPEC = JobSpec.model_validate({"kind": "train", "dataset": {"path": "coco"}, "max_attempts": 2})


def new_job(factory: sessionmaker[Session], spec: JobSpec = SPEC) -> str:
    with session_scope(factory) as s:
        return repo.create_job(s, spec).id


def status_of(factory: sessionmaker[Session], job_id: str) -> str:
    with session_scope(factory) as s:
        job = repo.get_job(s, job_id)
        assert job is not None
        return job.status


def event_statuses(factory: sessionmaker[Session], job_id: str) -> list[str]:
    with session_scope(factory) as s:
        return [e.data["status"] for e in events_repo.get_events(s, job_id) if e.type == "status"]
