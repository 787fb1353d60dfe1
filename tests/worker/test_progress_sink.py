"""``worker.progress_sink.DbProgressSink`` on a real (SQLite) database: the job row follows every
flush, ``progress`` event rows are stored at milestones only (1% of the schedule, a minute, the
last step)."""

from __future__ import annotations

from api.db import claims_repo, events_repo, jobs_repo
from api.db.session import session_scope
from mar_core.spec import JobSpec
from worker.progress_sink import DbProgressSink, ProgressMilestones

SPEC = JobSpec.model_validate({"kind": "train", "dataset": {"path": "x"}})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _running_job(sf) -> str:
    with session_scope(sf) as s:
        job_id = jobs_repo.create_job(s, SPEC).id
        claims_repo.claim_job(s, job_id, "w1", 60)
        claims_repo.mark_running(s, job_id, "w1")
    return job_id


def _progress_rows(sf, job_id: str) -> list[dict]:
    with session_scope(sf) as s:
        return [e.data for e in events_repo.get_events(s, job_id, limit=10_000) if e.type == "progress"]


def test_a_2000_step_job_stores_about_100_progress_events_and_its_row_stays_live(sf):
    job_id, clock = _running_job(sf), Clock()
    sink = DbProgressSink(sf, job_id, clock=clock)
    total, seconds_per_step = 2000, 0.02  # 40 s in all: the minute rule never fires
    for step in range(1, total + 1):
        clock.now += seconds_per_step
        sink({"type": "progress", "step": step, "total": total})
        if step % 250 == 0:  # the row is at most one flush (1 s = 50 steps) behind
            with session_scope(sf) as s:
                assert step - 50 <= jobs_repo.get_job(s, job_id).progress_step <= step
    sink.close()
    rows = _progress_rows(sf, job_id)
    # one row as each 1% of the schedule begins (the first update included) and the last step:
    # 20 steps per 1%, flushed every 50 steps, so every flush enters a new 1%
    assert 38 <= len(rows) <= 101
    assert rows[-1] == {"step": total, "total": total}
    assert [r["step"] for r in rows] == sorted(r["step"] for r in rows)
    with session_scope(sf) as s:
        assert jobs_repo.get_job(s, job_id).progress_step == total


def test_a_slow_schedule_stores_a_milestone_at_least_once_a_minute():
    milestones, stored = ProgressMilestones(), []
    for second in range(600):  # one step a second, one flush a second: 1% (100 steps) takes 100 s
        if milestones.due(second, 10_000, float(second)):
            milestones.stored(second, 10_000, float(second))
            stored.append(second)
    # the first update, then each 1% (every 100 s) and 60 s after each
    assert stored == [0, 60, 100, 160, 200, 260, 300, 360, 400, 460, 500, 560]


def test_each_new_percent_and_the_last_step_are_milestones_nothing_in_between():
    m = ProgressMilestones()
    assert m.due(0, 1000, 0.0)
    m.stored(0, 1000, 0.0)
    assert not m.due(9, 1000, 1.0) and m.due(10, 1000, 1.0)
    m.stored(10, 1000, 1.0)
    assert not m.due(19, 1000, 2.0) and m.due(1000, 1000, 2.0)
