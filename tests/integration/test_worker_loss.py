"""kill -9 of the worker and of its training child: the lease runs out, the reaper re-queues the
job, a new worker resumes it from the last checkpoint, and the metrics stay one series."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from worker.procs import signal_group, wait_gone

pytestmark = pytest.mark.integration

ITERATIONS = 12


def test_killed_worker_job_is_requeued_and_resumed(stack, tiny_spec, tmp_path):
    job = stack.submit(tiny_spec(iterations=ITERATIONS, name="kill-9", checkpoint_every=3))
    job_id = job["id"]
    stack.wait(job_id, lambda j: (j["progress_step"] or 0) >= 4, what="step 4 (after the step-3 checkpoint)")
    assert any(e["data"]["step"] >= 3 for e in stack.events(job_id, "checkpoint"))
    child = stack.events(job_id, "process")[-1]["data"]["pid"]

    stack.kill_worker(stack.worker)  # kill -9 of the worker's process group
    signal_group(child, signal.SIGKILL)  # and of the training process (its own group)
    killed_at = time.time()
    assert wait_gone(child, 10)
    stack.start_worker()

    job = stack.wait_terminal(job_id, timeout=300)
    assert job["status"] == "succeeded", (job, stack.log_tails())
    assert job["attempt"] == 2

    statuses = [(e["data"]["status"], e["data"].get("reason")) for e in stack.events(job_id, "status")]
    assert ("queued", "lease_expired") in statuses
    assert [s for s, _ in statuses].count("running") == 2
    requeued = next(e for e in stack.events(job_id, "status") if e["data"].get("reason") == "lease_expired")
    print(f"\n[{stack.name}] re-queued {requeued['created_at']} (killed at {time.ctime(killed_at)})")

    # resumed from the checkpoint, not restarted
    resumed = [
        e["data"]["message"] for e in stack.events(job_id, "log") if "resumed" in e["data"].get("message", "")
    ]
    assert resumed, stack.events(job_id, "log")
    report = json.loads(stack.client.download(job_id, "report.json", tmp_path).read_text())
    assert report["resumed_from_step"] >= 3

    # one value per step in every series, and every step of the run is there
    series = stack.client.metrics(job_id).series
    for name, points in series.items():
        steps = [p.step for p in points]
        assert len(steps) == len(set(steps)), f"{name}: duplicate steps {steps}"
    assert [p.step for p in series["loss/total"]] == list(range(1, ITERATIONS + 1))
    # steps up to the checkpoint were not re-run: their values date from before the kill
    resumed_from = report["resumed_from_step"]
    early = [p for p in series["loss/total"] if p.step <= resumed_from]
    assert all(p.time.timestamp() < killed_at for p in early)
    assert os.path.exists(stack.settings.job_dir(job_id) / "model.pt")
