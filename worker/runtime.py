"""Per-process state of a worker and the body of the ``mar.run_job`` task.

``run_job_once(job_id, worker_id)``: claim the job (one conditional UPDATE: a duplicate delivery,
a cancelled job or one another worker took finds nothing to claim and returns ``SKIPPED``),
then supervise its child process to the end. Nothing here raises for a job's failure.
"""

from __future__ import annotations

import logging
import os
import uuid
from functools import lru_cache

from celery.worker import state as celery_state

from api.broker import make_celery_client, send_run_job
from api.db.session import make_engine, make_session_factory
from api.db.states import JobState, RunOutcome
from api.settings import get_settings
from worker.store import DbJobStore
from worker.supervisor import Supervisor, SupervisorConfig

logger = logging.getLogger(__name__)

_TOKEN = uuid.uuid4().hex[:6]  # tells apart two processes that reuse a host name and pid


def worker_id(nodename: str | None) -> str:
    """A lease owner id unique to this worker process: ``{nodename}/{pid}-{token}``."""
    return f"{nodename or 'mar'}/{os.getpid()}-{_TOKEN}"


@lru_cache(maxsize=1)
def session_factory():
    """The worker process's session factory (one engine per process)."""
    return make_session_factory(make_engine(get_settings().database_url))


def supervisor_config() -> SupervisorConfig:
    """Lease, heartbeat and the stop grace period from the settings."""
    s = get_settings()
    return SupervisorConfig(
        lease_seconds=s.lease_seconds,
        heartbeat_seconds=s.heartbeat_seconds,
        grace_seconds=s.stop_grace_seconds,
    )


def celery_stopping() -> bool:
    """Whether this Celery worker received a (warm or cold) shutdown request."""
    # exit code 0 (EX_OK) means "stop" too: test identity, like celery.worker.state.maybe_shutdown
    return any(
        flag is not None and flag is not False
        for flag in (celery_state.should_stop, celery_state.should_terminate)
    )


def run_job_once(job_id: str, worker_id: str, worker_stopping=celery_stopping) -> str:
    """Take a message (``job_id`` names the job it was sent for) and run the first job of this
    worker's pool in the scheduling order (``api.db.scheduling``: usually that job; a
    higher-priority or fairer one when one waits). Returns the claimed job's final status,
    ``PAUSED`` (the task ends, the worker is free; a resume nudges the job again), ``SKIPPED``
    (nothing of the pool may start now), ``LOST`` or ``RELEASED`` (a ``RunOutcome``)."""
    settings = get_settings()
    pool = settings.my_pool
    if worker_stopping():
        # A message taken during warm shutdown (e.g. the re-nudge of a job this worker just
        # released): claiming would burn an attempt only to release the job again at once.
        logger.info("job %s: this worker is stopping; left queued for another worker", job_id)
        _nudge(job_id)
        return RunOutcome.SKIPPED
    store = DbJobStore(session_factory())
    claim = store.claim_next(pool, settings.default_pool, worker_id, settings.lease_seconds)
    if claim is None:
        logger.info("message for job %s: no job of pool %s may start now; skipped", job_id, pool)
        return RunOutcome.SKIPPED
    if claim.job_id != job_id:
        logger.info("message for job %s: job %s comes first in pool %s", job_id, claim.job_id, pool)
    job_id = claim.job_id
    logger.info("job %s: claimed by %s (attempt %d/%d)", job_id, worker_id, claim.attempt, claim.max_attempts)
    supervisor = Supervisor(
        claim,
        worker_id,
        settings.job_dir(job_id),
        store,
        supervisor_config(),
        worker_stopping=worker_stopping,
    )
    try:
        status = supervisor.run()
    except Exception as e:
        logger.exception("job %s: supervision failed", job_id)
        error = {
            "code": "worker_error",
            "message": f"the worker could not run the job: {type(e).__name__}: {e}",
            "param": None,
        }
        try:
            store.finish(job_id, worker_id, JobState.FAILED, error)
        except Exception:
            logger.exception("job %s: could not record the failure; the reaper will settle it", job_id)
        status = RunOutcome.FAILED
    logger.info("job %s: %s", job_id, status)
    if status == RunOutcome.RELEASED:
        _nudge(job_id)
    else:
        _wake_pool(store, pool)
    return status


def _nudge(job_id: str) -> None:
    """Send a released job a new ``mar.run_job`` message on this worker's pool queue (the one that
    brought it was acked early); if that fails the reaper re-sends it once it has been queued
    for a while."""
    settings = get_settings()
    send_run_job(make_celery_client(settings), job_id, settings.pool_queue(settings.my_pool))


def _wake_pool(store: DbJobStore, pool: str) -> None:
    """A run ended, so a job its project's ``max_running`` quota held may start now, and its
    message may have been spent while it was held: nudge the pool once for it (an extra nudge
    only claims nothing)."""
    try:
        first = store.first_released(pool, get_settings().default_pool)
    except Exception:
        logger.exception("could not read pool %s's queue; the reaper re-nudges waiting jobs", pool)
        return
    if first is not None:
        _nudge(first)
