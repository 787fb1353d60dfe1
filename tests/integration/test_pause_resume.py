"""Pausing a running job through the real stack: the training child checkpoints and exits, the
job is ``paused`` and the worker free (a second job runs to its end meanwhile); resumed, the job
continues from that checkpoint and succeeds with one metric value per step, 1..N."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.procs import wait_gone

pytestmark = pytest.mark.integration

STEPS = 20


def slow_spec(tiny_spec) -> dict:
    """20 steps of a few tenths of a second each, so a pause lands mid-run: at the suite's 64 px and
    batch 2 a step takes ~0.05 s on one thread (the embedded stack's cores - 1 on 2 cores) and the
    job could end before the supervisor's next poll saw the pause."""
    spec = tiny_spec(iterations=STEPS, name="pause-me", batch_size=4)
    spec["model"].update(min_size=160, max_size=160)
    return spec


def test_pause_frees_the_worker_and_resume_continues_the_same_series(stack, tiny_spec, tmp_path):
    job_id = stack.submit(slow_spec(tiny_spec))["id"]
    stack.wait(job_id, lambda j: (j["progress_step"] or 0) >= 1, what="step 1")
    child = stack.events(job_id, "process")[-1]["data"]["pid"]
    assert stack.client.pause(job_id).status in ("pausing", "paused")

    job = stack.wait(job_id, lambda j: j["status"] != "pausing", timeout=60, what="the pause")
    assert job["status"] == "paused" and job["worker_id"] is None, (job, stack.log_tails())
    assert wait_gone(child, 10)
    stopped_at = stack.events(job_id, "checkpoint")[-1]["data"]["step"]
    assert 1 <= stopped_at < STEPS
    last = stack.client.checkpoints(job_id).last
    assert last is not None and last.step == stopped_at
    saved = stack.client.download_checkpoint(job_id, "last", tmp_path / "last.pt")  # sha256 checked
    assert saved.stat().st_size == last.size

    # the worker is free: another job runs to its end while the first stays paused
    other = stack.submit(tiny_spec(iterations=1, name="meanwhile"))["id"]
    assert stack.wait_terminal(other, timeout=120)["status"] == "succeeded", stack.log_tails()
    assert stack.job(job_id)["status"] == "paused"

    assert stack.client.resume(job_id).status == "queued"
    job = stack.wait_terminal(job_id, timeout=120)
    assert job["status"] == "succeeded", (job, stack.log_tails())
    resumed = [e["data"]["message"] for e in stack.events(job_id, "log")]
    assert f"resumed from step {stopped_at}" in resumed, resumed
    statuses = [e["data"]["status"] for e in stack.events(job_id, "status")]
    assert statuses[statuses.index("pausing") :][:3] == ["pausing", "paused", "queued"], statuses

    series = stack.client.metrics(job_id, names=["lr"]).series["lr"]
    assert [p.step for p in series] == list(range(1, STEPS + 1))
    rows = Path(stack.settings.job_dir(job_id), "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(r)["step"] for r in rows if "lr" in json.loads(r)]
    assert logged == list(range(1, STEPS + 1)), logged  # each step once, no rerun duplicated
