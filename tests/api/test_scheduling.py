"""Scheduling on both databases: the pool order (priority, fair share, submission time), the
``max_running`` hold, claims that follow the order, run segments, preemption and the queue view."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.db import claims_repo, jobs_repo, quota_repo, scheduling, segments_repo, states
from api.db.models import Event, Job, RunSegment, utcnow
from api.db.session import session_scope
from mar_core.spec import JobSpec

POOLS = ["gpu", "cpu"]


def _job(
    factory: sessionmaker[Session],
    project: str = "a",
    priority: str = "normal",
    pool: str = "gpu",
    iters: int = 10,
) -> str:
    spec = JobSpec.model_validate(
        {"kind": "train", "dataset": {"path": "x"}, "train": {"iterations": iters}, "priority": priority}
    )
    with session_scope(factory) as s:
        return jobs_repo.create_job(s, spec, project=project, pool=pool).id


def _order(factory, pool: str = "gpu") -> list[str]:
    with session_scope(factory) as s:
        return [w.job_id for w in scheduling.waiting_order(s, pool, POOLS[0])]


def _claim(factory, worker: str = "w1", pool: str = "gpu") -> str | None:
    with session_scope(factory) as s:
        job = scheduling.claim_next(s, pool, POOLS[0], worker, 30)
        return job.id if job else None


def _events(factory, job_id: str, type: str) -> list[dict]:
    with session_scope(factory) as s:
        rows = s.execute(select(Event).where(Event.job_id == job_id, Event.type == type).order_by(Event.id))
        return [e.data for e in rows.scalars()]


def test_priority_then_submission_order(factory):
    low, normal1, high, normal2 = (_job(factory, priority=p) for p in ("low", "normal", "high", "normal"))
    assert _order(factory) == [high, normal1, normal2, low]


def test_fair_share_puts_the_project_that_used_least_first(factory):
    """A queued 10 jobs, one runs; B then queues 1: B's is next, ahead of A's backlog."""
    a_jobs = [_job(factory, "a") for _ in range(10)]
    assert _claim(factory) == a_jobs[0]
    b = _job(factory, "b")
    assert _order(factory)[0] == b
    assert _claim(factory, "w2") == b
    assert _order(factory) == a_jobs[1:]


def test_fair_share_counts_finished_runs_of_the_last_day_only(factory):
    old, recent = _job(factory, "old"), _job(factory, "recent")
    now = utcnow()
    with session_scope(factory) as s:
        s.add(RunSegment(job_id=old, project="old", pool="gpu", gpus=1, start_step=0, end_step=5,
                         started_at=now - timedelta(hours=30), ended_at=now - timedelta(hours=25)))  # fmt: skip
        s.add(RunSegment(job_id=recent, project="recent", pool="gpu", gpus=2, start_step=0, end_step=5,
                         started_at=now - timedelta(hours=2), ended_at=now - timedelta(hours=1)))  # fmt: skip
    with session_scope(factory) as s:
        used = segments_repo.usage_seconds(s, now)
    assert used == {"recent": pytest.approx(2 * 3600.0)}  # "old" left the window an hour ago
    assert _order(factory) == [old, recent]


def test_max_running_holds_the_project_and_the_next_project_goes(factory):
    with session_scope(factory) as s:
        quota_repo.set_quota(s, "a", max_running=1)
    a1, a2 = _job(factory, "a"), _job(factory, "a")
    b1 = _job(factory, "b")
    assert _claim(factory, "w1") == a1
    with session_scope(factory) as s:
        order = scheduling.waiting_order(s, "gpu", POOLS[0])
    assert [(w.job_id, w.held is not None) for w in order] == [(b1, False), (a2, True)]
    assert _claim(factory, "w2") == b1
    assert _claim(factory, "w3") is None  # a2 is held: nothing of the pool may start
    with session_scope(factory) as s:
        assert scheduling.first_capped_ready(s, "gpu", POOLS[0]) is None
        claims_repo.finish_job(s, a1, "w1", states.SUCCEEDED)
    with session_scope(factory) as s:
        assert scheduling.first_capped_ready(s, "gpu", POOLS[0]) == a2
    assert _claim(factory, "w1") == a2


def test_a_worker_claims_only_its_pools_jobs(factory):
    gpu, cpu = _job(factory, pool="gpu"), _job(factory, pool="cpu")
    assert _claim(factory, "c1", pool="cpu") == cpu
    assert _claim(factory, "c1", pool="cpu") is None
    assert _claim(factory, "g1", pool="gpu") == gpu


def test_concurrent_claims_respect_max_running(factory):
    """Eight workers claim at once: the project's quota of 2 holds exactly."""
    with session_scope(factory) as s:
        quota_repo.set_quota(s, "a", max_running=2)
    for _ in range(6):
        _job(factory, "a")
    got: list[str | None] = []
    barrier = threading.Barrier(8)

    def claim(i: int) -> None:
        barrier.wait()
        got.append(_claim(factory, f"w{i}"))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [g for g in got if g]
    assert len(claimed) == 2 and len(set(claimed)) == 2
    with session_scope(factory) as s:
        assert quota_repo.running_counts(s) == {"a": 2}


def test_a_run_is_one_segment_from_claim_to_its_end(factory):
    job_id = _job(factory)
    assert _claim(factory) == job_id
    with session_scope(factory) as s:
        claims_repo.mark_running(s, job_id, "w1")
        jobs_repo.set_progress(s, job_id, 7, 10)
    with session_scope(factory) as s:
        (seg,) = s.execute(select(RunSegment)).scalars()
        assert (seg.ended_at, seg.start_step) == (None, 0)
        jobs_repo.request_pause(s, job_id)
    with session_scope(factory) as s:
        claims_repo.park_job(s, job_id, "w1", step=7)
    with session_scope(factory) as s:
        (seg,) = s.execute(select(RunSegment)).scalars()
        assert seg.ended_at is not None and seg.end_step == 7
        assert s.get(Job, job_id).status == states.PAUSED


def test_seconds_until_below_waits_for_the_oldest_run_to_leave_the_window(factory):
    job_id = _job(factory, "a")
    now = utcnow()
    with session_scope(factory) as s:  # 2 h ending 21 h ago, then 1 h ending 1 h ago: 3 GPU-h
        for start, end in ((23, 21), (2, 1)):
            s.add(RunSegment(job_id=job_id, project="a", pool="gpu", gpus=1, start_step=0,
                             started_at=now - timedelta(hours=start), ended_at=now - timedelta(hours=end)))  # fmt: skip
    with session_scope(factory) as s:
        assert segments_repo.usage_seconds(s, now)["a"] == pytest.approx(3 * 3600.0)
        # below 2.5 h once half an hour of the first run has left the window: in 1.5 h
        wait = segments_repo.seconds_until_below(s, "a", 2.5 * 3600.0, now)
    assert wait == pytest.approx(1.5 * 3600.0, abs=2.0)


def test_preemption_pauses_the_lowest_running_job_and_requeues_it_once_paused(factory):
    with session_scope(factory) as s:
        scheduling.beat(s, "w1", "gpu", 1)
    low = _job(factory, "a", priority="low")
    assert _claim(factory) == low
    with session_scope(factory) as s:
        claims_repo.mark_running(s, low, "w1")
    high = _job(factory, "b", priority="high")
    with session_scope(factory) as s:
        assert scheduling.preempt(s, POOLS, stale_seconds=60) == [(low, high)]
    with session_scope(factory) as s:
        assert scheduling.preempt(s, POOLS, stale_seconds=60) == []  # one at a time
        assert s.get(Job, low).status == states.PAUSING
    assert _events(factory, low, "preempted") == [{"by": high, "priority": "high"}]
    assert _events(factory, high, "preempting") == [{"job": low, "pool": "gpu"}]
    with session_scope(factory) as s:
        assert scheduling.resume_preempted(s) == []  # not paused yet
        claims_repo.park_job(s, low, "w1", step=3)
    assert _claim(factory, "w1") == high  # the freed worker takes the high job
    with session_scope(factory) as s:
        assert [j.id for j in scheduling.resume_preempted(s)] == [low]
    with session_scope(factory) as s:
        job = s.get(Job, low)
        assert (job.status, job.preempted_by) == (states.QUEUED, None)


def test_no_preemption_while_a_slot_is_free_or_for_an_equal_priority(factory):
    with session_scope(factory) as s:
        scheduling.beat(s, "w1", "gpu", 1)
        scheduling.beat(s, "w2", "gpu", 1)
    running = _job(factory, priority="normal")
    assert _claim(factory) == running
    with session_scope(factory) as s:
        claims_repo.mark_running(s, running, "w1")
    _job(factory, priority="high")
    with session_scope(factory) as s:
        assert scheduling.preempt(s, POOLS, stale_seconds=60) == []  # w2 is free
        scheduling.forget_worker(s, "w2")
    _job(factory, priority="normal")
    with session_scope(factory) as s:
        assert scheduling.preempt(s, POOLS, stale_seconds=60) != []  # now the high one preempts


def test_a_users_pause_of_a_preempted_job_holds(factory):
    with session_scope(factory) as s:
        scheduling.beat(s, "w1", "gpu", 1)
    low = _job(factory, priority="low")
    _claim(factory)
    with session_scope(factory) as s:
        claims_repo.mark_running(s, low, "w1")
    _job(factory, priority="high")
    with session_scope(factory) as s:
        scheduling.preempt(s, POOLS, stale_seconds=60)
    with session_scope(factory) as s:
        jobs_repo.request_pause(s, low)  # the user's own pause
        claims_repo.park_job(s, low, "w1")
    with session_scope(factory) as s:
        assert scheduling.resume_preempted(s) == []
        assert s.get(Job, low).status == states.PAUSED


def test_queue_view_positions_etas_and_a_pool_without_workers(factory):
    with session_scope(factory) as s:
        scheduling.beat(s, "w1", "gpu", 1)
    first = _job(factory, "a", iters=10)
    assert _claim(factory) == first
    now = utcnow()
    with session_scope(factory) as s:  # measured: 4 steps in 8 s -> 2 s a step
        seg = s.execute(select(RunSegment)).scalar_one()
        seg.started_at = now - timedelta(seconds=8)
        claims_repo.mark_running(s, first, "w1")
        jobs_repo.set_progress(s, first, 4, 10)
    a2, b1 = _job(factory, "a", iters=5), _job(factory, "b", iters=5)
    _job(factory, "b", pool="cpu")
    with session_scope(factory) as s:
        view = {p["pool"]: p for p in scheduling.queue_view(s, POOLS, 60, None, now)}
        mine = {p["pool"]: p for p in scheduling.queue_view(s, POOLS, 60, "a", now)}
    gpu = view["gpu"]
    assert (gpu["workers"], gpu["running"], gpu["waiting"], gpu["note"]) == (1, 1, 2, None)
    assert gpu["seconds_per_step"] == pytest.approx(2.0, rel=1e-3)
    # b used nothing, a runs: b first; b starts when `first` ends (6 steps x 2 s), a2 after b (5 x 2 s)
    assert [(j["id"], j["position"]) for j in gpu["jobs"]] == [(b1, 1), (a2, 2)]
    assert [j["eta_seconds"] for j in gpu["jobs"]] == [
        pytest.approx(12.0, abs=0.1),
        pytest.approx(22.0, abs=0.1),
    ]
    assert [j["id"] for j in mine["gpu"]["jobs"]] == [a2]
    assert view["cpu"]["workers"] == 0 and "no live worker in pool 'cpu'" in view["cpu"]["note"]


def test_stale_workers_are_not_live(factory):
    with session_scope(factory) as s:
        scheduling.beat(s, "w1", "gpu", 2)
        assert scheduling.live_slots(s, 60) == {"gpu": 2}
        assert scheduling.live_slots(s, 60, utcnow() + timedelta(seconds=61)) == {}
