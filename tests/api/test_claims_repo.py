"""Claims and leases on SQLite and PostgreSQL (``claims_repo``): one claim per job, heartbeats and
the end of a run only for the lease holder, the reaper's settling of expired leases."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from api.db import claims_repo, events_repo, states
from api.db import jobs_repo as repo
from api.db.models import utcnow
from api.db.session import session_scope
from tests.api.repo_helpers import event_statuses, new_job, status_of


def test_claim_then_duplicate_claim_does_nothing(factory):
    job_id = new_job(factory)
    with session_scope(factory) as s:
        job = claims_repo.claim_job(s, job_id, "w1", 30)
        assert job is not None and job.status == "starting" and job.attempt == 1 and job.worker_id == "w1"
        assert job.lease_expires_at is not None and job.lease_expires_at > utcnow()
    with session_scope(factory) as s:
        assert claims_repo.claim_job(s, job_id, "w2", 30) is None
        job = repo.get_job(s, job_id)
        assert job is not None and job.worker_id == "w1" and job.attempt == 1
    assert event_statuses(factory, job_id) == ["queued", "starting"]


def test_claim_is_atomic_across_sessions(factory):
    job_id = new_job(factory)
    n = 6
    barrier = threading.Barrier(n)
    winners: list[str] = []
    errors: list[BaseException] = []

    def claim(worker: str) -> None:
        try:
            barrier.wait(timeout=10)
            with session_scope(factory) as s:
                if claims_repo.claim_job(s, job_id, worker, 30) is not None:
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
    assert event_statuses(factory, job_id) == ["queued", "starting"]


def test_running_heartbeat_and_finish_only_for_holder(factory):
    job_id = new_job(factory)
    with session_scope(factory) as s:
        assert not claims_repo.mark_running(s, job_id, "w1")  # not claimed yet
        claims_repo.claim_job(s, job_id, "w1", 30)
        assert not claims_repo.mark_running(s, job_id, "other")
        assert claims_repo.mark_running(s, job_id, "w1")
        assert not claims_repo.mark_running(s, job_id, "w1")  # already running
        assert claims_repo.heartbeat(s, job_id, "w1", 100)
        assert not claims_repo.heartbeat(s, job_id, "other", 100)
        assert repo.set_phase(s, job_id, "train") and repo.set_progress(s, job_id, 3, 5)
        assert not claims_repo.finish_job(s, job_id, "other", "succeeded")
        assert claims_repo.finish_job(s, job_id, "w1", "succeeded")
        job = repo.get_job(s, job_id)
        assert job is not None and job.status == "succeeded" and job.finished_at is not None
        assert (job.phase, job.progress_step, job.progress_total) == ("train", 3, 5)
        assert job.lease_expires_at is None
        # terminal never changes
        assert not claims_repo.finish_job(s, job_id, "w1", "failed")
        assert not claims_repo.heartbeat(s, job_id, "w1", 100)
        assert not repo.set_phase(s, job_id, "eval")
        with pytest.raises(states.TransitionError):
            repo.request_cancel(s, job_id)
        with pytest.raises(ValueError):
            claims_repo.finish_job(s, job_id, "w1", "running")
        types = [e.type for e in events_repo.get_events(s, job_id)]
    assert types == ["status", "status", "status", "phase", "progress", "status"]


def test_finish_from_queued_is_refused(factory):
    job_id = new_job(factory)
    with session_scope(factory) as s:
        assert not claims_repo.finish_job(s, job_id, "w1", "failed")
    assert status_of(factory, job_id) == "queued"


def test_failure_keeps_structured_error(factory):
    job_id = new_job(factory)
    err = {"code": "dataset_invalid", "message": "missing image", "param": "dataset.path"}
    with session_scope(factory) as s:
        claims_repo.claim_job(s, job_id, "w1", 30)
        assert claims_repo.finish_job(s, job_id, "w1", "failed", error=err)
    with session_scope(factory) as s:
        job = repo.get_job(s, job_id)
        assert job is not None and job.error == err


def test_requeue_expired_up_to_max_attempts(factory):
    job_id = new_job(factory)  # max_attempts = 2
    later = utcnow() + timedelta(seconds=120)
    with session_scope(factory) as s:
        claims_repo.claim_job(s, job_id, "w1", 30)
        claims_repo.mark_running(s, job_id, "w1")
        assert claims_repo.requeue_expired(s) == []  # lease still valid
    with session_scope(factory) as s:
        assert claims_repo.requeue_expired(s, now=later) == [job_id]
        job = repo.get_job(s, job_id)
        assert job is not None and job.status == "queued" and job.worker_id is None and job.attempt == 1
        assert not claims_repo.heartbeat(s, job_id, "w1", 30)  # the old worker lost it
        assert not claims_repo.finish_job(s, job_id, "w1", "succeeded")
    with session_scope(factory) as s:
        job = claims_repo.claim_job(s, job_id, "w2", 30)
        assert job is not None and job.attempt == 2
    with session_scope(factory) as s:
        assert claims_repo.requeue_expired(s, now=later) == []  # attempts used up
        job = repo.get_job(s, job_id)
        assert job is not None and job.status == "failed" and job.error["code"] == "lease_expired"
    assert event_statuses(factory, job_id) == [
        "queued",
        "starting",
        "running",
        "queued",
        "starting",
        "failed",
    ]


def test_release_requeues_now_for_the_holder_only_even_at_max_attempts(factory):
    job_id = new_job(factory)  # max_attempts = 2
    with session_scope(factory) as s:
        for attempt in (1, 2):
            assert claims_repo.claim_job(s, job_id, "w1", 30) is not None
            claims_repo.mark_running(s, job_id, "w1")
            assert not claims_repo.release_job(s, job_id, "w2")  # not the holder
            assert claims_repo.release_job(s, job_id, "w1")
            job = repo.get_job(s, job_id)
            assert job.status == "queued" and job.worker_id is None and job.lease_expires_at is None
            assert job.attempt == attempt
        assert not claims_repo.release_job(s, job_id, "w1")  # queued: nothing to release
        assert not claims_repo.heartbeat(s, job_id, "w1", 30)
    statuses = event_statuses(factory, job_id)
    assert statuses.count("queued") >= 3  # created, then two releases


def test_requeue_expired_settles_cancelling_and_spares_live_leases(factory):
    stopping, live = new_job(factory), new_job(factory)
    with session_scope(factory) as s:
        claims_repo.claim_job(s, stopping, "w1", 1)
        repo.request_cancel(s, stopping)
        claims_repo.claim_job(s, live, "w2", 3600)
    with session_scope(factory) as s:
        assert claims_repo.requeue_expired(s, now=utcnow() + timedelta(seconds=60)) == []
        assert repo.get_job(s, stopping).status == "cancelled"
        assert repo.get_job(s, live).status == "starting"
