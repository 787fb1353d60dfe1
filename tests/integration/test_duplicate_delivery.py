"""A second (and third) delivery of the same task message does not run the job twice: a message
is a nudge to its pool, and the worker that takes it claims the pool's first waiting job, if any
(``api.db.scheduling``), never a job that is not queued."""

from __future__ import annotations

import time

import pytest

from api.broker import make_celery_client, send_run_job

pytestmark = pytest.mark.integration


def test_duplicate_task_messages_run_the_job_once(stack, tiny_spec):
    celery = make_celery_client(stack.settings)
    job = stack.submit(tiny_spec(iterations=2, name="dup"))
    assert send_run_job(celery, job["id"], stack.settings.queue)  # while queued/starting
    stack.wait(job["id"], lambda j: j["status"] == "running", what="running")
    assert send_run_job(celery, job["id"], stack.settings.queue)  # while running

    job = stack.wait_terminal(job["id"])
    assert job["status"] == "succeeded", (job, stack.log_tails())
    taken = f"message for job {job['id']}: "  # a message that did not (re)claim its own job
    deadline = time.monotonic() + 30  # the duplicates reach the (single) worker after the job
    while stack.worker_logs().count(taken) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stack.worker_logs().count(taken) >= 2, stack.log_tails()

    job = stack.job(job["id"])
    assert job["attempt"] == 1 and job["status"] == "succeeded"
    statuses = [e["data"]["status"] for e in stack.events(job["id"], "status")]
    assert statuses.count("running") == 1 and statuses.count("starting") == 1
    assert len(stack.events(job["id"], "process")) == 1
    celery.close()
