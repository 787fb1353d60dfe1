"""Unit tests of ``worker.reaper.reap_once`` on a real (SQLite) database; no broker, no worker."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from api.db import jobs_repo
from api.db.session import init_db, make_engine, make_session_factory, session_scope
from mar_core.spec import JobSpec
from worker.reaper import NudgeMemo, reap_once

SPEC = JobSpec.model_validate({"kind": "train", "dataset": {"path": "x"}})


@pytest.fixture
def sf(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    init_db(engine)
    yield make_session_factory(engine)
    engine.dispose()


def _job(sf) -> str:
    with session_scope(sf) as s:
        return jobs_repo.create_job(s, SPEC).id


def test_expired_lease_is_requeued_and_nudged(sf):
    job_id = _job(sf)
    with session_scope(sf) as s:
        jobs_repo.claim_job(s, job_id, "w1", lease_seconds=1)
    sent: list[str] = []
    assert reap_once(sf, sent.append) == []  # lease still valid
    later = datetime.now(timezone.utc) + timedelta(seconds=2)
    assert reap_once(sf, sent.append, now=later, stale_after=60) == [job_id]
    assert sent == [job_id]
    with session_scope(sf) as s:
        job = jobs_repo.get_job(s, job_id)
        assert (job.status, job.attempt, job.worker_id) == ("queued", 1, None)


def test_stale_queued_job_is_renudged_only_when_its_message_is_missing(sf):
    a, b = _job(sf), _job(sf)
    later = datetime.now(timezone.utc) + timedelta(seconds=120)
    sent: list[str] = []
    memo = NudgeMemo()
    # two messages waiting: nothing is missing
    assert reap_once(sf, sent.append, stale_after=30, queue_depth=lambda: 2, memo=memo, now=later) == []
    # one message waiting for two stale jobs: the oldest gets a new nudge
    assert reap_once(sf, sent.append, stale_after=30, queue_depth=lambda: 1, memo=memo, now=later) == [a]
    # back-off: not again right away, but the other one may go when both are missing
    assert reap_once(sf, sent.append, stale_after=30, queue_depth=lambda: 0, memo=memo, now=later) == [b]
    assert reap_once(sf, sent.append, stale_after=30, queue_depth=lambda: 0, memo=memo, now=later) == []
    assert sent == [a, b]


def test_fresh_queued_job_is_left_alone(sf):
    _job(sf)
    sent: list[str] = []
    assert reap_once(sf, sent.append, stale_after=30, queue_depth=lambda: 0) == []
    assert sent == []


def test_unknown_queue_depth_still_renudges(sf):
    a = _job(sf)
    later = datetime.now(timezone.utc) + timedelta(seconds=120)

    def broken():
        raise ConnectionError("broker down")

    assert reap_once(sf, lambda _id: None, stale_after=30, queue_depth=broken, now=later) == [a]
