"""The soak's fair-share figure on made-up records: the window where every project has a job
queued, and each project's worker seconds inside it."""

from __future__ import annotations

import pytest

from benchmarks.fair_share import fair_share, queued_intervals
from benchmarks.soak import SoakConfig, submissions

T0 = 1_700_000_000.0


def _ev(i: int, t: float, status: str) -> dict:
    return {"id": i, "type": "status", "created_at": T0 + t, "data": {"status": status}}


def test_queued_intervals_follow_the_status_events_and_stay_open_to_the_end():
    events = [_ev(1, 0, "queued"), _ev(2, 10, "starting"), _ev(3, 12, "running"), _ev(4, 20, "queued")]
    assert queued_intervals(events, T0 + 50) == [(T0, T0 + 10), (T0 + 20, T0 + 50)]


def test_shares_count_worker_time_only_while_both_projects_wait():
    jobs = [
        {"project": "a", "events": [_ev(1, 0, "queued"), _ev(2, 100, "starting")]},
        {"project": "b", "events": [_ev(3, 50, "queued"), _ev(4, 60, "starting")]},
    ]
    segments = [
        {"project": "a", "started_at": T0, "ended_at": T0 + 55},
        {"project": "a", "started_at": T0 + 55, "ended_at": T0 + 100},
        {"project": "b", "started_at": T0 + 55, "ended_at": T0 + 65},
    ]
    got = fair_share(jobs, segments)
    assert got["window_seconds"] == 10.0  # 50..60
    assert got["worker_seconds"] == {"a": 10.0, "b": 5.0}
    assert got["share"] == {"a": pytest.approx(0.667), "b": pytest.approx(0.333)}


def test_no_common_wait_means_no_share():
    jobs = [
        {"project": "a", "events": [_ev(1, 0, "queued"), _ev(2, 10, "starting")]},
        {"project": "b", "events": [_ev(3, 20, "queued"), _ev(4, 30, "starting")]},
    ]
    got = fair_share(jobs, [{"project": "a", "started_at": T0 + 10, "ended_at": T0 + 40}])
    assert got["window_seconds"] == 0 and got["share"] == {"a": None, "b": None}


def test_submissions_put_project_a_first_and_every_nth_of_b_high():
    subs = submissions(SoakConfig(jobs=12, b_share=0.25, b_high_every=2))
    assert subs == [("a", "normal")] * 9 + [("b", "normal"), ("b", "high"), ("b", "normal")]
