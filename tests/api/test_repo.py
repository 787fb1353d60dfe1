"""The jobs repository on SQLite and PostgreSQL: submission, cancel, pagination, events,
artifacts, keys, and the migration against the models (claims: ``test_claims_repo``, metrics:
``test_metrics_repo``)."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from api.db import claims_repo, events_repo, keys_repo, states
from api.db import jobs_repo as repo
from api.db.models import Job, utcnow
from api.db.paging import InvalidCursorError
from api.db.session import session_scope
from tests.api.repo_helpers import SPEC, event_statuses, new_job


def test_create_job_is_queued_with_event(factory):
    job_id = new_job(factory)
    with session_scope(factory) as s:
        job = repo.get_job(s, job_id)
        assert job is not None and job.status == "queued" and job.attempt == 0 and job.max_attempts == 2
        assert job.spec["dataset"]["path"] == "coco" and job.created_at.tzinfo is not None
        assert claims_repo.queued_job_ids(s) == [job_id]
        assert claims_repo.queued_job_ids(s, older_than=utcnow() + timedelta(seconds=1)) == [job_id]
        assert claims_repo.queued_job_ids(s, older_than=utcnow() - timedelta(seconds=60)) == []
    assert event_statuses(factory, job_id) == ["queued"]


def test_cancel_transitions(factory):
    queued, running = new_job(factory), new_job(factory)
    with session_scope(factory) as s:
        assert not repo.is_cancel_requested(s, queued)
        assert repo.request_cancel(s, queued) == "cancelled"
        assert claims_repo.claim_job(s, queued, "w1", 30) is None  # a cancelled job is never claimed
        claims_repo.claim_job(s, running, "w1", 30)
        claims_repo.mark_running(s, running, "w1")
        assert repo.request_cancel(s, running) == "cancelling"
        assert repo.request_cancel(s, running) == "cancelling"  # idempotent
        assert repo.is_cancel_requested(s, running)
        assert claims_repo.heartbeat(s, running, "w1", 30)  # still leased while it stops
        assert claims_repo.finish_job(s, running, "w1", "cancelled")
        with pytest.raises(states.TransitionError):
            repo.request_cancel(s, running)
        with pytest.raises(states.JobNotFoundError):
            repo.request_cancel(s, "nope")
    assert event_statuses(factory, queued) == ["queued", "cancelled"]
    assert event_statuses(factory, running) == ["queued", "starting", "running", "cancelling", "cancelled"]


def test_list_jobs_cursor_pagination(factory):
    ids = [new_job(factory) for _ in range(5)]
    with session_scope(factory) as s:
        repo.request_cancel(s, ids[0])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        with session_scope(factory) as s:
            jobs, cursor = repo.list_jobs(s, limit=2, cursor=cursor)
        seen += [j.id for j in jobs]
        pages += 1
        if cursor is None:
            break
    assert pages == 3 and seen == list(reversed(ids))
    with session_scope(factory) as s:
        jobs, nxt = repo.list_jobs(s, status="cancelled")
        assert [j.id for j in jobs] == [ids[0]] and nxt is None
        with pytest.raises(InvalidCursorError):
            repo.list_jobs(s, cursor="garbage!")


def test_events_after_id(factory):
    job_id = new_job(factory)
    with session_scope(factory) as s:
        first = events_repo.get_events(s, job_id)[0]
        e2 = events_repo.append_event(s, job_id, "log", {"message": "hello"})
        e3 = events_repo.append_event(s, job_id, "log", {"message": "again"})
    with session_scope(factory) as s:
        assert [e.id for e in events_repo.get_events(s, job_id, after_id=first.id)] == [e2.id, e3.id]
        assert e3.id > e2.id > first.id


def test_add_artifact_size_and_sha256(factory, tmp_path: Path):
    job_id = new_job(factory)
    f = tmp_path / "model.pt"
    f.write_bytes(b"x" * 3_000_001)
    with session_scope(factory) as s:
        art = repo.add_artifact(s, job_id, "model.pt", f)
        assert art.size == 3_000_001 and art.sha256 == hashlib.sha256(f.read_bytes()).hexdigest()
    f.write_bytes(b"new")  # a resumed run re-exports
    with session_scope(factory) as s:
        art = repo.add_artifact(s, job_id, "model.pt", f)
        assert art.size == 3 and len(repo.list_artifacts(s, job_id)) == 1
        assert repo.get_artifact(s, job_id, "model.pt").sha256 == hashlib.sha256(b"new").hexdigest()


def test_api_keys(factory):
    with session_scope(factory) as s:
        row, key = keys_repo.create_api_key(s, "ci")
        assert key.startswith("mar_") and row.key_hash != key and key.startswith(row.prefix)
    with session_scope(factory) as s:
        assert keys_repo.verify_api_key(s, key) is not None
        assert keys_repo.verify_api_key(s, key + "x") is None
        assert keys_repo.revoke_api_key(s, row.id)
        assert not keys_repo.revoke_api_key(s, row.id)
    with session_scope(factory) as s:
        assert keys_repo.verify_api_key(s, key) is None
        assert [k.id for k in keys_repo.list_api_keys(s)] == [row.id]


def test_session_scope_rolls_back(factory):
    with pytest.raises(RuntimeError), session_scope(factory) as s:
        repo.create_job(s, SPEC)
        raise RuntimeError("boom")
    with session_scope(factory) as s:
        assert s.execute(select(Job)).first() is None


def test_migration_matches_the_models(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from api.db.models import Base

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
