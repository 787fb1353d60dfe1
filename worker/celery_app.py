"""The Celery application of the GPU worker: ``celery -A worker.celery_app worker`` or ``mar worker``.

Configured from ``api.broker.celery_broker_config(settings)`` (the same broker settings the API
sends with) plus what an hours-long GPU task needs:

- one job at a time per worker (``worker_concurrency=1``, one worker per GPU) and
  ``worker_prefetch_multiplier=1``; on Redis also ``worker_disable_prefetch``, so a busy worker
  holds no second message while another worker idles. Celery applies that setting on Redis only;
  on the filesystem transport (the laptop stack) ``NoMessageWhileBusy`` does the same (without
  it, with early acks, a busy worker took the demo's second job and the idle one waited 30 s for
  the reaper's re-nudge);
- a dedicated queue (``settings.queue``), JSON only, results ignored (the database is the
  record of a job, not a result backend);
- the ``threads`` pool: the task only supervises (training runs in a fresh child process), so a
  thread is enough, the worker stays responsive to control commands, and a ``kill -9`` of the
  worker takes the supervisor with it instead of leaving a pool process behind.

Early acknowledgement + the lease reaper, not late ack + visibility timeout. With late ack a
message of a worker that died is redelivered only after the broker's visibility timeout, which
must exceed the longest job (hours, days): a crashed job would wait that long, and a job that
outlives the timeout is delivered twice. With early ack the message is acked when the task
starts; the job's lease in the database (heartbeat every ``MAR_HEARTBEAT_SECONDS``) is what
proves the worker alive. When the lease runs out the reaper re-queues the job and sends a new
nudge, within ``MAR_LEASE_SECONDS`` whatever the job's length, and the retry resumes from the
last checkpoint. A lost or duplicated message costs nothing: the claim is one conditional
UPDATE, and the reaper re-nudges a job left queued with no message for it.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, bootsteps
from celery.worker import state

from api.broker import celery_broker_config, is_filesystem
from api.settings import Settings, get_settings

# How often the filesystem transport looks for new messages (kombu's default is 1 s).
FILESYSTEM_POLL_SECONDS = 0.2


def worker_config(settings: Settings) -> dict[str, Any]:
    """The broker config plus the worker settings described above."""
    cfg = celery_broker_config(settings)
    cfg.update(
        worker_concurrency=1,
        worker_prefetch_multiplier=1,
        worker_pool="threads",
        task_acks_late=False,
        task_ignore_result=True,
        task_track_started=False,
        task_default_queue=settings.queue,
        task_serializer="json",
        accept_content=["json"],
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        imports=("worker.tasks", "worker.worker_beat"),
    )
    if settings.broker_url.startswith(("redis://", "rediss://")):
        cfg["worker_disable_prefetch"] = True
    if is_filesystem(settings):
        cfg["broker_transport_options"] = {
            **cfg.get("broker_transport_options", {}),
            "polling_interval": FILESYSTEM_POLL_SECONDS,
        }
    return cfg


class NoMessageWhileBusy(bootsteps.StartStopStep):
    """``worker_disable_prefetch`` for the filesystem transport: the consumer's channel takes a
    message only while the worker has fewer requests than pool slots (Celery's own code for Redis,
    ``celery.worker.consumer.tasks.Tasks.start``, which it skips on other transports)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, c) -> None:
        qos = c.task_consumer.channel.qos
        can_consume = qos.can_consume

        def only_when_free() -> bool:
            return len(state.reserved_requests) < c.pool.num_processes and can_consume()

        qos.can_consume = only_when_free


def create_app(settings: Settings | None = None) -> Celery:
    """A worker app for ``settings`` (the environment's by default)."""
    settings = settings or get_settings()
    app = Celery("mar")
    app.conf.update(worker_config(settings))
    if is_filesystem(settings):
        app.steps["consumer"].add(NoMessageWhileBusy)
    return app


app = create_app()
