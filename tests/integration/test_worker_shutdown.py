"""A warm shutdown of the worker (SIGTERM, as on a deploy) while a job runs: the training child
checkpoints and exits, the worker releases the job (queued again at once, with a new message)
and exits, and the job resumes on the next worker."""

from __future__ import annotations

import pytest

from worker.procs import wait_gone

pytestmark = pytest.mark.integration


def test_worker_sigterm_checkpoints_and_the_job_resumes_elsewhere(stack, tiny_spec):
    job = stack.submit(tiny_spec(iterations=5000, name="deploy", checkpoint_every=1000))
    job_id = job["id"]
    stack.wait(job_id, lambda j: (j["progress_step"] or 0) >= 2, what="step 2")
    child = stack.events(job_id, "process")[-1]["data"]["pid"]

    assert stack.stack.stop_part(stack.worker) == 0  # SIGTERM: warm shutdown, exit code 0
    assert wait_gone(child, 10)
    stopped_at = stack.events(job_id, "checkpoint")[-1]["data"]["step"]
    assert stopped_at >= 2
    # released at once (not when the lease runs out), and said why
    assert stack.job(job_id)["status"] == "queued"
    queued = [e["data"] for e in stack.events(job_id, "status") if e["data"].get("status") == "queued"]
    assert queued and queued[-1]["reason"] == "worker_shutdown", queued

    stack.start_worker()
    stack.wait(
        job_id,
        lambda j: j["attempt"] == 2 and (j["progress_step"] or 0) > stopped_at,
        what="the second attempt to train past the checkpoint",
    )
    resumed = [e["data"]["message"] for e in stack.events(job_id, "log")]
    assert f"resumed from step {stopped_at}" in resumed, resumed
    stack.client.cancel(job_id)
    assert stack.wait_terminal(job_id, timeout=120)["status"] == "cancelled"
