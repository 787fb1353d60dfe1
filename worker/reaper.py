"""The lease reaper: settle jobs whose worker stopped heartbeating, and re-send lost nudges.

``reap_once`` does one pass:

1. ``claims_repo.requeue_expired``: an active job whose lease ran out goes back to ``queued``
   (``attempt < max_attempts``; else ``failed`` with ``lease_expired``; ``cancelling`` ends
   ``cancelled``), and each re-queued id gets a new ``mar.run_job`` nudge. The worker that
   claims it runs ``run_job`` in the same workdir, which resumes from
   ``checkpoints/last.pt``; metrics are upserted per (name, step), so the series stays one
   value per step.
2. Jobs ``queued`` for longer than ``stale_after`` seconds whose ``mar.run_job`` message is not
   in the broker queue lost their nudge (broker restarted, send failed after the API committed,
   a worker died holding the message): exactly those are nudged again, whatever the queue's
   length, so an orphan waits at most ``stale_after`` plus one pass behind any stream of new
   jobs. The queue's messages are read without taking them (``worker.broker_peek``: Redis,
   ``filesystem://``); on a broker that cannot be read so, the oldest stale jobs, as many as
   messages are missing by the queue depth, are nudged, each with an exponential back-off. A
   nudge too many is harmless (the claim is a conditional UPDATE).

``run_reaper`` loops; ``mar reaper`` and ``mar up`` run it in its own process, with the webhook
delivery loop (``worker.webhook_delivery``) in a thread beside it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from kombu.exceptions import ChannelError

from api.broker import make_celery_client, send_run_job
from api.db import claims_repo, scheduling
from api.db.session import make_engine, make_session_factory, session_scope
from api.settings import get_settings
from worker.broker_peek import queued_message_job_ids
from worker.webhook_delivery import run_webhook_loop

logger = logging.getLogger(__name__)

SendTask = Callable[[str], object]


@dataclass
class NudgeMemo:
    """When each stale queued job was last re-nudged (monotonic time) and how often."""

    last: dict[str, tuple[float, int]] = field(default_factory=dict)
    max_backoff_doublings: int = 6

    def due(self, job_id: str, now: float, stale_after: float) -> bool:
        if job_id not in self.last:
            return True
        at, count = self.last[job_id]
        return now - at >= stale_after * 2 ** min(count - 1, self.max_backoff_doublings)

    def record(self, job_id: str, now: float) -> None:
        self.last[job_id] = (now, self.last.get(job_id, (0.0, 0))[1] + 1)

    def keep_only(self, job_ids: set[str]) -> None:
        for job_id in set(self.last) - job_ids:
            del self.last[job_id]


def reap_once(
    session_factory,
    send_task: SendTask,
    *,
    stale_after: float = 30.0,
    queue_depth: Callable[[], int | None] | None = None,
    queued_in_broker: Callable[[], set[str] | None] | None = None,
    memo: NudgeMemo | None = None,
    now: datetime | None = None,
    pools: list[str] | None = None,
) -> list[str]:
    """One pass; returns the ids nudged (re-queued ones first, then re-nudged stale ones). With
    ``pools``, a stale job its project's ``max_running`` quota holds is not re-nudged (the worker
    that ends one of the project's runs nudges it: ``worker.runtime``)."""
    now = now or datetime.now(timezone.utc)
    with session_scope(session_factory) as s:
        requeued = claims_repo.requeue_expired(s, now=now)
    for job_id in requeued:
        logger.warning("job %s: lease expired; re-queued", job_id)
        send_task(job_id)

    with session_scope(session_factory) as s:
        held = scheduling.held_job_ids(s, pools) if pools else set()
        stale = [
            j
            for j in claims_repo.queued_job_ids(s, older_than=now - timedelta(seconds=stale_after))
            if j not in requeued and j not in held
        ]
    memo = memo if memo is not None else NudgeMemo()
    memo.keep_only(set(stale))
    if not stale:
        return requeued
    mono = time.monotonic()
    waiting = _safe_call(queued_in_broker)
    if waiting is not None:  # exact: the stale jobs without a message
        renudged = [j for j in stale if j not in waiting]
        depth: int | None = len(waiting)
    else:
        depth = _safe_call(queue_depth)
        missing = len(stale) if depth is None else len(stale) - depth
        if missing <= 0:
            return requeued  # every stale job may still have its message waiting in the queue
        renudged = [j for j in stale if memo.due(j, mono, stale_after)][:missing]
    for job_id in renudged:
        logger.info(
            "job %s: queued for over %.0f s with no message (%s in queue); nudging again",
            job_id,
            stale_after,
            depth,
        )
        send_task(job_id)
        memo.record(job_id, mono)
    return requeued + renudged


def schedule_once(session_factory, send_task: SendTask, pools: list[str], stale_seconds: float) -> list[str]:
    """Preemption: ask the running job a waiting higher-priority job outranks to pause (one per
    pool at a time), and put preempted jobs that have paused back in the queue (nudged).
    Returns the ids nudged."""
    with session_scope(session_factory) as s:
        scheduling.preempt(s, pools, stale_seconds)
    with session_scope(session_factory) as s:
        back = [job.id for job in scheduling.resume_preempted(s)]
    for job_id in back:
        logger.info("job %s: preempted and paused; queued again", job_id)
        send_task(job_id)
    return back


def _safe_call(read: Callable[[], Any] | None) -> Any:
    """What ``read`` says of the broker queue; None when unknown (a broker error)."""
    if read is None:
        return None
    try:
        return read()
    except Exception as e:  # noqa: BLE001 - unknown: nudge by depth or all (duplicates are harmless)
        logger.debug("broker queue unknown: %s", e)
        return None


def broker_queue_depth(celery_app, queue: str) -> int | None:
    """Messages waiting in ``queue`` (0 when Redis dropped the empty list), None if unknown."""
    with celery_app.connection_for_read() as conn:
        channel = conn.default_channel
        try:
            return int(channel.queue_declare(queue=queue, passive=True).message_count)
        except ChannelError:
            return 0


def run_reaper(
    interval: float = 5.0,
    *,
    settings=None,
    stale_after: float | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Reap every ``interval`` seconds until ``stop`` is set; database/broker errors are logged."""
    settings = settings or get_settings()
    stop = stop or threading.Event()
    engine = make_engine(settings.database_url)
    sf = make_session_factory(engine)
    celery = make_celery_client(settings)
    stale = stale_after if stale_after is not None else max(30.0, 3 * interval)

    def send(job_id: str) -> None:  # to the queue of the job's pool
        with session_scope(sf) as s:
            pool = claims_repo.pool_of(s, job_id)
        send_run_job(celery, job_id, settings.pool_queue(pool))

    memo = NudgeMemo()
    webhooks = threading.Thread(
        target=run_webhook_loop, args=(sf, settings, stop), name="webhook-delivery", daemon=True
    )
    webhooks.start()
    logger.info(
        "reaper: every %.1f s, leases of %.0f s, stale queued after %.0f s",
        interval,
        settings.lease_seconds,
        stale,
    )
    try:
        while not stop.is_set():
            try:
                schedule_once(sf, send, settings.pools, settings.worker_stale_after)
                reap_once(
                    sf,
                    send,
                    stale_after=stale,
                    queue_depth=lambda: sum(
                        broker_queue_depth(celery, settings.pool_queue(p)) or 0 for p in settings.pools
                    ),
                    queued_in_broker=lambda: queued_message_job_ids(celery, settings),
                    memo=memo,
                    pools=settings.pools,
                )
            except Exception:
                logger.exception("reaper pass failed; retrying in %.1f s", interval)
            stop.wait(interval)
    finally:
        stop.set()
        webhooks.join(timeout=15)
        engine.dispose()
