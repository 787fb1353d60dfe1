"""Unit tests of the supervision logic: real child processes (a stand-in module), fake store.

Not marked ``integration``: no broker, no database, no torch; a few seconds in all.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from api.db.states import RunOutcome
from worker.procs import pid_alive
from worker.store import Claim
from worker.supervisor import Supervisor, SupervisorConfig

ROOT = Path(__file__).resolve().parents[2]


class FakeStore:
    """In-memory ``JobStore``: records calls; ``lease_ok`` / ``cancel`` / ``pause`` steer the
    supervisor; ``park`` succeeds while a pause is requested (the job is pausing)."""

    def __init__(self):
        self.lease_ok = True
        self.cancel = False
        self.pause = False
        self.parked = 0
        self.finished: list[tuple[str, dict | None]] = []
        self.events: list[tuple[str, dict]] = []
        self.beats = 0
        self.released = 0

    def claim(self, job_id, worker_id, lease_seconds):  # pragma: no cover - not used here
        return Claim(job_id, 1, 3)

    def heartbeat(self, job_id, worker_id, lease_seconds):
        self.beats += 1
        return self.lease_ok

    def cancel_requested(self, job_id):
        return self.cancel

    def stop_requested(self, job_id):
        return "cancel" if self.cancel else "pause" if self.pause else None

    def park(self, job_id, worker_id):
        self.parked += int(self.pause and not self.cancel)
        return self.pause and not self.cancel

    def finish(self, job_id, worker_id, status, error=None):
        self.finished.append((status, error))
        return True

    def release(self, job_id, worker_id):
        self.released += 1
        return True

    def event(self, job_id, type, data):
        self.events.append((type, data))


def make(tmp_path, mode, store=None, **cfg):
    env = {"FAKE_CHILD_MODE": mode, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    config = SupervisorConfig(
        lease_seconds=5,
        heartbeat_seconds=0.2,
        cancel_poll_seconds=0.1,
        grace_seconds=1.0,
        poll_seconds=0.05,
        child_module="tests.worker.fake_child",
        extra_env=env,
        **cfg,
    )
    store = store or FakeStore()
    sup = Supervisor(Claim("job1", 1, 3), "w1", tmp_path / "job1", store, config)
    return sup, store


def child_pid(store) -> int:
    return next(d["pid"] for t, d in store.events if t == "process")


def test_success_is_reported(tmp_path):
    sup, store = make(tmp_path, "succeed")
    assert sup.run() == "succeeded"
    assert store.finished == [("succeeded", None)]


def test_structured_error_reaches_finish(tmp_path):
    sup, store = make(tmp_path, "fail")
    assert sup.run() == "failed"
    status, error = store.finished[0]
    assert status == "failed" and error == {"code": "dataset_invalid", "message": "bad", "param": "dataset"}


def test_crash_without_result_fails_with_log_tail(tmp_path):
    sup, store = make(tmp_path, "crash")
    assert sup.run() == "failed"
    status, error = store.finished[0]
    assert status == "failed" and error["code"] == "process_crashed"
    assert "exited with code 7" in error["message"] and "boom" in error["message"]


def _set_later(fn, delay):
    threading.Timer(delay, fn).start()


def test_cancel_stops_child_gracefully(tmp_path):
    sup, store = make(tmp_path, "run")
    _set_later(lambda: setattr(store, "cancel", True), 0.5)
    t0 = time.monotonic()
    assert sup.run() == "cancelled"
    assert time.monotonic() - t0 < 5
    assert store.finished == [("cancelled", None)]
    assert not pid_alive(child_pid(store))


def test_child_ignoring_sigterm_is_killed_after_grace(tmp_path):
    sup, store = make(tmp_path, "stubborn")
    _set_later(lambda: setattr(store, "cancel", True), 0.5)
    assert sup.run() == "cancelled"
    assert not pid_alive(child_pid(store))


def test_lost_lease_kills_child_and_reports_nothing(tmp_path):
    sup, store = make(tmp_path, "stubborn")
    _set_later(lambda: setattr(store, "lease_ok", False), 0.5)
    assert sup.run() == RunOutcome.LOST
    assert store.finished == []
    assert not pid_alive(child_pid(store))


def test_worker_shutdown_releases_the_job(tmp_path):
    flag = threading.Event()
    sup, store = make(tmp_path, "run")
    sup.worker_stopping = flag.is_set
    _set_later(flag.set, 0.5)
    assert sup.run() == RunOutcome.RELEASED
    assert store.finished == [] and store.released == 1
    assert store.beats >= 1


def test_heartbeat_database_error_is_not_a_lost_lease(tmp_path):
    class Flaky(FakeStore):
        def heartbeat(self, *a):
            self.beats += 1
            if self.beats <= 2:
                raise ConnectionError("database down")
            self.cancel = True
            return True

    sup, store = make(tmp_path, "run", store=Flaky())
    assert sup.run() == "cancelled"
    assert store.beats >= 3


def test_a_stopping_worker_claims_nothing_and_passes_the_job_on(monkeypatch):
    """A message taken during warm shutdown (the re-nudge of the job it just released) must not
    be claimed: that burnt an attempt (the next worker got attempt 3 of 3)."""
    from worker import runtime

    nudged = []
    monkeypatch.setattr(runtime, "_nudge", nudged.append)
    monkeypatch.setattr(runtime, "DbJobStore", lambda *_: (_ for _ in ()).throw(AssertionError("claimed")))
    assert runtime.run_job_once("job1", "w1", worker_stopping=lambda: True) == RunOutcome.SKIPPED
    assert nudged == ["job1"]


def test_pause_stops_child_gracefully_and_parks_the_job(tmp_path):
    sup, store = make(tmp_path, "run")
    _set_later(lambda: setattr(store, "pause", True), 0.5)
    assert sup.run() == RunOutcome.PAUSED
    assert store.parked == 1 and store.finished == [] and store.released == 0
    assert not pid_alive(child_pid(store))


def test_pause_during_worker_shutdown_parks_instead_of_releasing(tmp_path):
    flag = threading.Event()
    sup, store = make(tmp_path, "run")
    sup.worker_stopping = flag.is_set
    _set_later(lambda: (flag.set(), setattr(store, "pause", True)), 0.5)  # pausing: parked, not re-queued
    assert sup.run() == RunOutcome.PAUSED
    assert store.parked == 1 and store.released == 0


def test_a_job_cancelled_while_pausing_ends_cancelled(tmp_path):
    sup, store = make(tmp_path, "run")
    _set_later(lambda: setattr(store, "pause", True), 0.3)
    _set_later(lambda: setattr(store, "cancel", True), 0.35)
    assert sup.run() == "cancelled"
    assert store.parked == 0 and store.finished == [("cancelled", None)]
