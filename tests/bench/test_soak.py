"""``mar bench soak``'s verdict on made-up records (each check passes on a clean record and fails
on a broken one), its process sampler on real processes, and its report section."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time

from benchmarks.child_watch import ChildWatch
from benchmarks.soak_checks import attempts_of, check_metrics, check_no_overlap, expected_steps, verify
from benchmarks.soak_format import soak_section

ITER = 4
TRAIN = {"loss/total": list(range(1, ITER + 1)), "lr": list(range(1, ITER + 1)), "eval/AP": [ITER]}


def _ev(i: int, t: float, type: str = "status", **data) -> dict:
    return {"id": i, "type": type, "data": data, "created_at": t}


def _two_attempts() -> list[dict]:
    """Attempt 1 on worker A (pid 11) lost its lease; attempt 2 on worker B (pid 22) succeeded."""
    return [
        _ev(1, 0.0, status="queued", attempt=0),
        _ev(2, 1.0, status="starting", attempt=1, worker_id="A"),
        _ev(3, 1.1, "process", pid=11, worker_id="A", attempt=1),
        _ev(4, 2.0, status="running", worker_id="A"),
        _ev(5, 10.0, status="queued", reason="lease_expired", worker_id="A", attempt=1),
        _ev(6, 11.0, status="starting", attempt=2, worker_id="B"),
        _ev(7, 11.1, "process", pid=22, worker_id="B", attempt=2),
        _ev(8, 12.0, status="running", worker_id="B"),
        _ev(9, 20.0, status="succeeded", worker_id="B"),
    ]


def _record() -> dict:
    job = {
        "id": "j1",
        "status": "succeeded",
        "attempt": 2,
        "series": copy.deepcopy(TRAIN),
        "events": _two_attempts(),
    }
    return {
        "spec": {"train": {"iterations": ITER}},
        "required_series": sorted(TRAIN),
        "jobs_submitted": 1,
        "jobs": [job],
        "processes": {
            "seen": [
                {"pid": 11, "job_id": "j1", "first": 1.2, "last": 5.0},
                {"pid": 22, "job_id": "j1", "first": 11.2, "last": 19.0},
            ],
            "together": [],
        },
    }


def test_clean_record_passes():
    v = verify(_record())
    assert v["checks"] == {"succeeded": True, "one_value_per_step": True, "no_overlap": True}, v["failures"]
    assert v["attempts"] == {"max": 2, "mean": 2.0, "jobs_retried": 1}
    attempts, problems = attempts_of(_two_attempts())
    assert not problems
    assert [(a.number, a.worker_id, a.end_reason) for a in attempts] == [
        (1, "A", "lease_expired"),
        (2, "B", None),
    ]


def test_a_preempted_attempt_lasts_until_paused():
    """A process checkpointing after ``pausing`` is inside its attempt; one alive after
    ``paused`` is not."""
    rec = _record()
    rec["jobs"][0]["events"] = [
        _ev(1, 0.0, status="queued", attempt=0),
        _ev(2, 1.0, status="starting", attempt=1, worker_id="A"),
        _ev(3, 1.1, "process", pid=11, worker_id="A", attempt=1),
        _ev(4, 2.0, status="running", worker_id="A"),
        _ev(5, 4.0, status="pausing", reason="preempted"),
        _ev(6, 6.0, status="paused", worker_id="A", step=2),
        _ev(7, 7.0, status="queued", reason="preempted"),
        _ev(8, 11.0, status="starting", attempt=2, worker_id="B"),
        _ev(9, 11.1, "process", pid=22, worker_id="B", attempt=2),
        _ev(10, 12.0, status="running", worker_id="B"),
        _ev(11, 20.0, status="succeeded", worker_id="B"),
    ]
    rec["processes"]["seen"][0]["last"] = 5.9  # checkpointing after "pausing"
    v = verify(rec)
    assert v["checks"]["no_overlap"], v["failures"]
    rec["processes"]["seen"][0]["last"] = 7.0  # still alive after "paused"
    assert not verify(rec)["checks"]["no_overlap"]


def test_failed_job_fails_the_check():
    rec = _record()
    rec["jobs"][0]["status"] = "failed"
    assert verify(rec)["checks"]["succeeded"] is False
    rec = _record()
    rec["jobs_submitted"] = 2  # a job not read back
    assert verify(rec)["checks"]["succeeded"] is False


def test_metric_gaps_duplicates_and_missing_series_fail():
    assert expected_steps("eval/AP", 4) == [4] and expected_steps("loss/total", 4) == [1, 2, 3, 4]
    assert check_metrics(TRAIN, set(TRAIN), ITER) == []
    assert check_metrics({**TRAIN, "lr": [1, 2, 2, 3, 4]}, set(TRAIN), ITER)  # twice at step 2
    assert check_metrics({**TRAIN, "lr": [1, 2, 4]}, set(TRAIN), ITER)  # step 3 lost
    assert check_metrics({**TRAIN, "eval/AP": [2, 4]}, set(TRAIN), ITER)  # evaluated twice
    del_lr = {k: v for k, v in TRAIN.items() if k != "lr"}
    assert check_metrics(del_lr, set(TRAIN), ITER) == ["series lr missing"]


def test_an_orphan_process_or_two_open_attempts_fail():
    events = _two_attempts()
    late = [{"pid": 11, "job_id": "j1", "first": 1.2, "last": 11.5}]  # alive after its lease expired
    assert any("alive outside" in p for p in check_no_overlap(events, late, []))
    assert check_no_overlap(events, [], [{"pids": [11, 22], "at": 11.5}])  # seen together in one sample
    unknown = [{"pid": 33, "job_id": "j1", "first": 12.0, "last": 13.0}]  # no process event
    assert check_no_overlap(events, unknown, [])
    # a second claim before the first attempt ended
    overlapping = [e for e in events if e["id"] != 5]
    assert any("while attempt 1 was open" in p for p in check_no_overlap(overlapping, [], []))
    # a process event of another worker than the claim's
    wrong = copy.deepcopy(events)
    wrong[6]["data"]["worker_id"] = "A"
    assert check_no_overlap(wrong, [], [])


def test_a_process_exiting_after_its_result_is_not_a_second_run():
    """Attempt 1 wrote its result at 9.0 (before its lease expired at 10.0) and was still
    exiting at 11.5, beside attempt 2's process: counted as lingering, not as a failure."""
    events = _two_attempts()
    late = [{"pid": 11, "job_id": "j1", "first": 1.2, "last": 11.5}]
    lingering: list[float] = []
    assert check_no_overlap(events, late, [{"pids": [11, 22], "at": 11.5}], {"1": 9.0}, lingering) == []
    assert lingering == [1.5]
    # the result written only after the attempt ended: the process was still working
    assert len(check_no_overlap(events, late, [{"pids": [11, 22], "at": 11.5}], {"1": 12.0})) == 2
    rec = _record()
    rec["processes"]["seen"][0]["last"] = 11.5
    rec["jobs"][0]["results"] = {"1": 9.0, "2": 19.5}
    v = verify(rec)
    assert v["checks"]["no_overlap"] and v["lingering"] == {"processes": 1, "max_s": 1.5}


def test_child_watch_sees_two_processes_of_one_job(tmp_path):
    root = tmp_path / "jobs"

    def fake_child(job: str, leader: bool = True) -> subprocess.Popen:  # the argv shape of worker.child
        code = "import time; time.sleep(30)"
        result = str(root / job / ".worker" / "result-1.json")
        argv = [sys.executable, "-c", code, "worker.child", job, "--result", result]
        return subprocess.Popen(argv, start_new_session=leader)

    # jz: a process a training process forked (not a session leader) is not a training process
    procs = [fake_child("jx"), fake_child("jx"), fake_child("jy"), fake_child("jz", leader=False)]
    try:
        watch = ChildWatch(root)
        deadline = time.monotonic() + 10
        while len(watch.seen) < 3 and time.monotonic() < deadline:
            watch.sample()
        out = watch.stop()
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert sorted(r["job_id"] for r in out["seen"]) == ["jx", "jx", "jy"]
    assert {t["job_id"] for t in out["together"]} == {"jx"}


def test_report_section_from_a_result_file(tmp_path):
    assert "Not run yet" in "\n".join(soak_section(tmp_path))
    rec = _record()
    rec.update(
        command="mar bench soak --jobs 1",
        started_at="2026-12-01T00:00:00+00:00",
        config={
            "workers": 2,
            "kill_every": [20, 40],
            "lease_seconds": 6,
            "heartbeat_seconds": 1,
            "reaper_interval": 1,
        },
        spec={
            "model": {"arch": "retinanet", "backbone": "resnet18"},
            "max_attempts": 10,
            "train": {"iterations": ITER, "batch_size": 2, "checkpoint_every": 2},
        },  # fmt: skip
        kills=[{"at": 5.0}],
        broker_restarts=[{"killed_at": 8.0, "up_at": 11.5, "jobs_ended_before": 0}],
        wall_seconds=60.0,
        jobs_per_minute=1.0,
    )
    rec["processes"].update(interval_s=0.25, samples=100)
    rec["verdict"] = verify(rec)
    (tmp_path / "soak-20261201T000000Z.json").write_text(json.dumps(rec))
    text = "\n".join(soak_section(tmp_path))
    assert "| worker kills (SIGKILL of the process group every 20-40 s) | 1 |" in text
    assert "| attempts per job: max / mean / jobs retried | 2 / 2.00 / 1 |" in text
    assert "FAIL" not in text and text.count("| pass |") == 3
