"""The lease reaper: settle jobs whose worker stopped heartbeating, and re-send lost nudges.

``reap_once`` does one pass:

1. ``jobs_repo.requeue_expired``: an active job whose lease ran out goes back to ``queued``
   (``attempt < max_attempts``; else ``failed`` with ``lease_expired``; ``cancelling`` ends
   ``cancelled``), and each re-queued id gets a new ``mar.run_job`` nudge. The worker that
   claims it runs ``run_job`` in the same workdir, which resumes from
   ``checkpoints/last.pt``; metrics are upserted per (name, step), so the series stays one
   value per step.
2. Jobs ``queued`` for longer than ``stale_after`` seconds while the broker queue holds fewer
   messages than there are such jobs lost their nudge (broker restarted, send failed after the
   API committed, a worker died holding the message): the oldest of them, as many as messages
   are missing, are nudged again, each with an exponential back-off. A nudge too many is
   harmless (the claim is a conditional UPDATE) and the queue does not grow without bound.

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

from kombu.exceptions import ChannelError

from api.broker import make_celery_client, send_run_job
from api.db import jobs_repo
from api.db.session import make_engine, make_session_factory, session_scope
from api.settings import get_settings
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
    memo: NudgeMemo | None = None,
    now: datetime | None = None,
) -> list[str]:
    """One pass; returns the ids nudged (re-queued ones first, then re-nudged stale ones)."""
    now = now or datetime.now(timezone.utc)
    with session_scope(session_factory) as s:
        requeued = jobs_repo.requeue_expired(s, now=now)
    for job_id in requeued:
        logger.warning("job %s: lease expired; re-queued", job_id)
        send_task(job_id)

    with session_scope(session_factory) as s:
        stale = [
            j
            for j in jobs_repo.queued_job_ids(s, older_than=now - timedelta(seconds=stale_after))
            if j not in requeued
        ]
    memo = memo if memo is not None else NudgeMemo()
    memo.keep_only(set(stale))
    if not stale:
        return requeued
    depth = _safe_depth(queue_depth)
    missing = len(stale) if depth is None else len(stale) - depth
    if missing <= 0:
        return requeued  # every stale job may still have its message waiting in the queue
    mono = time.monotonic()
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


def _safe_depth(queue_depth: Callable[[], int | None] | None) -> int | None:
    if queue_depth is None:
        return None
    try:
        return queue_depth()
    except Exception as e:  # noqa: BLE001 - unknown depth: nudge (duplicates are harmless)
        logger.debug("queue depth unknown: %s", e)
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
                reap_once(
                    sf,
                    lambda job_id: send_run_job(celery, job_id, settings.queue),
                    stale_after=stale,
                    queue_depth=lambda: broker_queue_depth(celery, settings.queue),
                    memo=memo,
                )
            except Exception:
                logger.exception("reaper pass failed; retrying in %.1f s", interval)
            stop.wait(interval)
    finally:
        stop.set()
        webhooks.join(timeout=15)
        engine.dispose()
