"""The one Celery task: ``mar.run_job(job_id)``, a nudge to run a job the database holds.

Thin like a view: it passes the id to ``worker.runtime.run_job_once`` and never lets a job's
exception reach Celery (a failing job must not take the worker process down with it).
"""

from __future__ import annotations

import logging

from api.broker import RUN_JOB_TASK
from worker.celery_app import app
from worker.runtime import run_job_once, worker_id

logger = logging.getLogger(__name__)


@app.task(name=RUN_JOB_TASK, bind=True, ignore_result=True, acks_late=False)
def run_job(self, job_id: str) -> str:
    """Claim job ``job_id`` and run it to its end; return how it ended (for the worker log)."""
    try:
        return run_job_once(str(job_id), worker_id(self.request.hostname))
    except Exception:
        logger.exception("job %s: could not be run; it stays in the database for the reaper", job_id)
        return "error"
