"""Unit tests of ``worker.reaper.reap_once`` on a real (SQLite) database; no broker, no worker."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from api.broker import send_run_job
from api.db import claims_repo, jobs_repo
from api.db.session import session_scope
from mar_core.spec import JobSpec
from worker.broker_peek import queued_message_job_ids
from worker.reaper import NudgeMemo, broker_queue_depth, reap_once

SPEC = JobSpec.model_validate({"kind": "train", "dataset": {"path": "x"}})


def _job(sf) -> str:
    with session_scope(sf) as s:
        return jobs_repo.create_job(s, SPEC).id


def test_expired_lease_is_requeued_and_nudged(sf):
    job_id = _job(sf)
    with session_scope(sf) as s:
        claims_repo.claim_job(s, job_id, "w1", lease_seconds=1)
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


@pytest.fixture(params=["filesystem", "redis"])
def broker(request, tmp_path):
    """A real broker (a ``filesystem://`` folder, or Redis at 127.0.0.1:6379 on a queue of its
    own): ``(settings, celery client)``."""
    from api.broker import make_celery_client
    from api.settings import Settings

    url = "filesystem://" if request.param == "filesystem" else "redis://127.0.0.1:6379/15"
    settings = Settings(state_dir=tmp_path / "state", broker_url=url, queue=f"reaper-{uuid.uuid4().hex[:8]}")
    celery = make_celery_client(settings)
    if request.param == "redis":
        try:
            broker_queue_depth(celery, settings.queue)
        except Exception as e:  # noqa: BLE001
            pytest.skip(f"Redis unreachable: {e}")
    yield settings, celery
    if request.param == "redis":
        with celery.connection_for_write() as conn:
            conn.default_channel.client.delete(settings.queue)


def test_an_orphan_behind_a_steady_stream_of_new_jobs_is_renudged_at_once(sf, broker):
    """An API crash left a committed job without a message; new jobs keep arriving with theirs
    and nobody consumes: the orphan, and only it, is re-sent on the first pass after it is stale."""
    settings, celery = broker
    orphan = _job(sf)
    sent: list[str] = []

    def send(job_id: str) -> None:
        sent.append(job_id)
        send_run_job(celery, job_id, settings.queue)

    memo = NudgeMemo()
    t0 = datetime.now(timezone.utc)
    waited = None
    for tick in range(1, 8):  # one pass every 10 s of simulated time, a new job before each
        send(_job(sf))
        now = t0 + timedelta(seconds=10 * tick)
        renudged = reap_once(
            sf,
            send,
            stale_after=30,
            queue_depth=lambda: broker_queue_depth(celery, settings.queue),
            queued_in_broker=lambda: queued_message_job_ids(celery, settings),
            memo=memo,
            now=now,
        )
        if orphan in renudged:
            assert renudged == [orphan]  # no job that has its message gets a second one
            waited = 10 * tick
            break
    assert waited is not None and waited <= 40, "the orphan was never re-sent"
    assert orphan in queued_message_job_ids(celery, settings)
