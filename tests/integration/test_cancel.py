"""Cancelling a running job stops its training process gracefully."""

from __future__ import annotations

import pytest

from worker.procs import wait_gone

pytestmark = pytest.mark.integration


def test_cancel_running_job_ends_cancelled_and_its_process_is_gone(stack, tiny_spec):
    job = stack.submit(tiny_spec(iterations=5000, name="cancel-me", checkpoint_every=1000))
    job = stack.wait(job["id"], lambda j: (j["progress_step"] or 0) >= 1, what="the first training step")
    pid = stack.events(job["id"], "process")[-1]["data"]["pid"]
    assert stack.client.cancel(job["id"]).status == "cancelling"

    job = stack.wait_terminal(job["id"], timeout=120)
    assert job["status"] == "cancelled", (job, stack.log_tails())
    assert wait_gone(pid, timeout=10), f"training process {pid} still alive"
    statuses = [e["data"]["status"] for e in stack.events(job["id"], "status")]
    assert statuses[-2:] == ["cancelling", "cancelled"]
    # the graceful stop wrote a checkpoint at the step it stopped (resumable)
    ckpts = stack.events(job["id"], "checkpoint")
    assert ckpts and ckpts[-1]["data"]["step"] >= 1
