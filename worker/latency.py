"""Submit-to-running latency: how long a job waits between ``POST /jobs`` and ``running``.

``running`` is set by the training child once it has started and loaded the job, so this covers
the broker hop, the claim, the child's start-up and its database connection (not the import
of torch and the data loading that follow). Used by the integration tests and the benchmarks.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from api.schemas import JobPublic
from api.sdk import MarClient

logger = logging.getLogger(__name__)

# Reached once a job has been running (or can never run).
_PAST_RUNNING = frozenset({"running", "cancelling", "succeeded", "failed", "cancelled"})


def submit_to_running(
    client: MarClient, spec: dict[str, Any], *, timeout: float = 120.0, poll_seconds: float = 0.02
) -> tuple[JobPublic, float]:
    """Submit ``spec``, poll until the job is running; return ``(job, seconds)``.

    Raises ``TimeoutError`` after ``timeout`` seconds and ``RuntimeError`` when the job ends
    without having run (its status says why).
    """
    t0 = time.perf_counter()
    job_id = client.submit(spec).id
    deadline = t0 + timeout
    while True:
        job = client.get_job(job_id)
        if job.status in _PAST_RUNNING:
            seconds = time.perf_counter() - t0
            if job.status in ("failed", "cancelled") and job.started_at is None:
                raise RuntimeError(f"job {job.id} ended {job.status} before running: {job.error}")
            logger.info("job %s: POST /jobs -> %s in %.3f s", job.id, job.status, seconds)
            return job, seconds
        if time.perf_counter() > deadline:
            raise TimeoutError(f"job {job.id} still {job.status} after {timeout:.0f} s")
        time.sleep(poll_seconds)
