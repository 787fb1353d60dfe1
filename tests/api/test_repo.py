"""The jobs repository on SQLite and PostgreSQL: conditional transitions, claims, leases,
metrics upsert, pagination, artifacts."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.db import jobs_repo as repo
from api.db import keys_repo, states
from api.db.models import Job, utcnow
from api.db.paging import InvalidCursorError
from api.db.session import session_scope
from mar_core.spec import JobSpec

SPEC = JobSpec.model_validate({"kind": "train", "dataset": {"path": "coco"}, "max_attempts": 2})


def _new(factory: sessionmaker[Session], spec: JobSpec = SPEC) -> str:
    with session_scope(factory) as s:
        return repo.create_job(s, spec).id


def _status(factory: sessionmaker[Session], job_id: str) -> str:
    with session_scope(factory) as s:
        job = repo.get_job(s, job_id)
        assert job is not None
        return job.status


def _event_statuses(factory: sessionmaker[Session], job_id: str) -> list[str]:
    with session_scope(factory) as s:
        return [e.data["status"] for e in repo.get_events(s, job_id) if e.type == "status"]


def test_create_job_is_queued_with_event(factory):
    job_id = _new(factory)
    with session_scope(factory) as s:
        job = repo.get_job(s, job_id)
        assert job is not None and job.status == "queued" and job.attempt == 0 and job.max_attempts == 2
        assert job.spec["dataset"]["path"] == "coco" and job.created_at.tzinfo is not None
        assert repo.queued_job_ids(s) == [job_id]
        assert repo.queued_job_ids(s, older_than=utcnow() + timedelta(seconds=1)) == [job_id]
        assert repo.queued_job_ids(s, older_than=utcnow() - timedelta(seconds=60)) == []
    assert _event_statuses(factory, job_id) == ["queued"]


def test_claim_then_duplicate_claim_does_nothing(factory):
    job_id = _new(factory)
    with session_scope(factory) as s:
        job = repo.claim_job(s, job_id, "w1", 30)
        assert job is not None and job.status == "starting" and job.attempt == 1 and job.worker_id == "w1"
        assert job.lease_expires_at is not None and job.lease_expires_at > utcnow()
    with session_scope(factory) as s:
        assert repo.claim_job(s, job_id, "w2", 30) is None
        job = repo.get_job(s, job_id)
        assert job is not None and job.worker_id == "w1" and job.attempt == 1
    assert _event_statuses(factory, job_id) == ["queued", "starting"]


def test_claim_is_atomic_across_sessions(factory):
    job_id = _new(factory)
    n = 6
    barrier = threading.Barrier(n)
    winners: list[str] = []
    errors: list[BaseException] = []

    def claim(worker: str) -> None:
        try:
            barrier.wait(timeout=10)
            with session_scope(factory) as s:
                if repo.claim_job(s, job_id, worker, 30) is not None:
                    winners.append(worker)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert len(winners) == 1
    with session_scope(factory) as s:
        job = repo.get_job(s, job_id)
        assert job is not None and job.attempt == 1 and job.worker_id == winners[0]
    assert _event_statuses(factory, job_id) == ["queued", "starting"]


def test_running_heartbeat_and_finish_only_for_holder(factory):
    job_id = _new(factory)
    with session_scope(factory) as s:
        assert not repo.mark_running(s, job_id, "w1")  # not claimed yet
        repo.claim_job(s, job_id, "w1", 30)
        assert not repo.mark_running(s, job_id, "other")
        assert repo.mark_running(s, job_id, "w1")
        assert not repo.mark_running(s, job_id, "w1")  # already running
        assert repo.heartbeat(s, job_id, "w1", 100)
        assert not repo.heartbeat(s, job_id, "other", 100)
        assert repo.set_phase(s, job_id, "train") and repo.set_progress(s, job_id, 3, 5)
        assert not repo.finish_job(s, job_id, "other", "succeeded")
        assert repo.finish_job(s, job_id, "w1", "succeeded")
        job = repo.get_job(s, job_id)
        assert job is not None and job.status == "succeeded" and job.finished_at is not None
        assert (job.phase, job.progress_step, job.progress_total) == ("train", 3, 5)
        assert job.lease_expires_at is None
        # terminal never changes
        assert not repo.finish_job(s, job_id, "w1", "failed")
        assert not repo.heartbeat(s, job_id, "w1", 100)
        assert not repo.set_phase(s, job_id, "eval")
        with pytest.raises(states.TransitionError):
            repo.request_cancel(s, job_id)
        with pytest.raises(ValueError):
            repo.finish_job(s, job_id, "w1", "running")
        types = [e.type for e in repo.get_events(s, job_id)]
    assert types == ["status", "status", "status", "phase", "progress", "status"]


def test_finish_from_queued_is_refused(factory):
    job_id = _new(factory)
    with session_scope(factory) as s:
        assert not repo.finish_job(s, job_id, "w1", "failed")
    assert _status(factory, job_id) == "queued"


def test_failure_keeps_structured_error(factory):
    job_id = _new(factory)
    err = {"code": "dataset_invalid", "message": "missing image", "param": "dataset.path"}
    with session_scope(factory) as s:
        repo.claim_job(s, job_id, "w1", 30)
        assert repo.finish_job(s, job_id, "w1", "failed", error=err)
    with session_scope(factory) as s:
        job = repo.get_job(s, job_id)
        assert job is not None and job.error == err


def test_cancel_transitions(factory):
    queued, running = _new(factory), _new(factory)
    with session_scope(factory) as s:
        assert not repo.is_cancel_requested(s, queued)
        assert repo.request_cancel(s, queued) == "cancelled"
        assert repo.claim_job(s, queued, "w1", 30) is None  # a cancelled job is never claimed
        repo.claim_job(s, running, "w1", 30)
        repo.mark_running(s, running, "w1")
        assert repo.request_cancel(s, running) == "cancelling"
        assert repo.request_cancel(s, running) == "cancelling"  # idempotent
        assert repo.is_cancel_requested(s, running)
        assert repo.heartbeat(s, running, "w1", 30)  # still leased while it stops
        assert repo.finish_job(s, running, "w1", "cancelled")
        with pytest.raises(states.TransitionError):
            repo.request_cancel(s, running)
        with pytest.raises(states.JobNotFoundError):
            repo.request_cancel(s, "nope")
    assert _event_statuses(factory, queued) == ["queued", "cancelled"]
    assert _event_statuses(factory, running) == ["queued", "starting", "running", "cancelling", "cancelled"]


def test_requeue_expired_up_to_max_attempts(factory):
    job_id = _new(factory)  # max_attempts = 2
    later = utcnow() + timedelta(seconds=120)
    with session_scope(factory) as s:
        repo.claim_job(s, job_id, "w1", 30)
        repo.mark_running(s, job_id, "w1")
        assert repo.requeue_expired(s) == []  # lease still valid
    with session_scope(factory) as s:
        assert repo.requeue_expired(s, now=later) == [job_id]
        job = repo.get_job(s, job_id)
        assert job is not None and job.status == "queued" and job.worker_id is None and job.attempt == 1
        assert not repo.heartbeat(s, job_id, "w1", 30)  # the old worker lost it
        assert not repo.finish_job(s, job_id, "w1", "succeeded")
    with session_scope(factory) as s:
        job = repo.claim_job(s, job_id, "w2", 30)
        assert job is not None and job.attempt == 2
    with session_scope(factory) as s:
        assert repo.requeue_expired(s, now=later) == []  # attempts used up
        job = repo.get_job(s, job_id)
        assert job is not None and job.status == "failed" and job.error["code"] == "lease_expired"
    assert _event_statuses(factory, job_id) == [
        "queued",
        "starting",
        "running",
        "queued",
        "starting",
        "failed",
    ]


def test_release_requeues_now_for_the_holder_only_even_at_max_attempts(factory):
    job_id = _new(factory)  # max_attempts = 2
    with session_scope(factory) as s:
        for attempt in (1, 2):
            assert repo.claim_job(s, job_id, "w1", 30) is not None
            repo.mark_running(s, job_id, "w1")
            assert not repo.release_job(s, job_id, "w2")  # not the holder
            assert repo.release_job(s, job_id, "w1")
            job = repo.get_job(s, job_id)
            assert job.status == "queued" and job.worker_id is None and job.lease_expires_at is None
            assert job.attempt == attempt
        assert not repo.release_job(s, job_id, "w1")  # queued: nothing to release
        assert not repo.heartbeat(s, job_id, "w1", 30)
    statuses = _event_statuses(factory, job_id)
    assert statuses.count("queued") >= 3  # created, then two releases


def test_requeue_expired_settles_cancelling_and_spares_live_leases(factory):
    stopping, live = _new(factory), _new(factory)
    with session_scope(factory) as s:
        repo.claim_job(s, stopping, "w1", 1)
        repo.request_cancel(s, stopping)
        repo.claim_job(s, live, "w2", 3600)
    with session_scope(factory) as s:
        assert repo.requeue_expired(s, now=utcnow() + timedelta(seconds=60)) == []
        assert repo.get_job(s, stopping).status == "cancelled"
        assert repo.get_job(s, live).status == "starting"


def test_metrics_upsert_keeps_one_value_per_step(factory):
    job_id = _new(factory)
    with session_scope(factory) as s:
        repo.append_metrics(s, job_id, 10, {"loss/total": 2.0, "lr": 0.1})
        repo.append_metrics(s, job_id, 20, {"loss/total": 1.5})
    with session_scope(factory) as s:  # a resumed run reports step 20 again
        repo.append_metrics(s, job_id, 20, {"loss/total": 1.25})
        repo.append_metrics(s, job_id, 30, {})
    with session_scope(factory) as s:
        rows = repo.get_metrics(s, job_id)
        assert [(m.name, m.step, m.value) for m in rows] == [
            ("loss/total", 10, 2.0),
            ("loss/total", 20, 1.25),
            ("lr", 10, 0.1),
        ]
        assert [(m.name, m.step) for m in repo.get_metrics(s, job_id, names=["lr"])] == [("lr", 10)]
        assert [m.step for m in repo.get_metrics(s, job_id, since_step=20)] == [20]


def test_list_jobs_cursor_pagination(factory):
    ids = [_new(factory) for _ in range(5)]
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
    job_id = _new(factory)
    with session_scope(factory) as s:
        first = repo.get_events(s, job_id)[0]
        e2 = repo.append_event(s, job_id, "log", {"message": "hello"})
        e3 = repo.append_event(s, job_id, "log", {"message": "again"})
    with session_scope(factory) as s:
        assert [e.id for e in repo.get_events(s, job_id, after_id=first.id)] == [e2.id, e3.id]
        assert e3.id > e2.id > first.id


def test_add_artifact_size_and_sha256(factory, tmp_path: Path):
    job_id = _new(factory)
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
