"""The Celery side of the API: configuration shared with the worker, and the job nudge.

The API never imports ``worker/`` (nor torch): it sends ``mar.run_job`` by name with only the
job id through a bare ``celery.Celery`` client. The message is only a nudge; the database holds
the job, so a failed send leaves the job queued for the reaper / ``mar up`` to re-nudge.

``celery_broker_config(settings)`` is the one place that maps ``BROKER_URL`` to Celery settings;
the worker app does ``app.conf.update(celery_broker_config(settings))``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery

from api.settings import Settings

log = logging.getLogger(__name__)

RUN_JOB_TASK = "mar.run_job"


def filesystem_transport_options(settings: Settings) -> dict[str, Any]:
    """Folders of kombu's ``filesystem://`` transport under ``{state}/broker`` (created here).

    ``data_folder_in`` and ``data_folder_out`` are the same folder so any process on the host
    sees every message; without ``control_folder`` kombu writes ``control/`` into the cwd.
    """
    base = settings.broker_dir
    queue_dir, processed, control = base / "queue", base / "processed", base / "control"
    for d in (queue_dir, processed, control):
        d.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(queue_dir),
        "data_folder_out": str(queue_dir),
        "processed_folder": str(processed),
        "control_folder": str(control),
        "store_processed": False,
    }


def is_filesystem(settings: Settings) -> bool:
    return settings.broker_url.startswith("filesystem://")


def celery_broker_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for this broker: JSON only, results ignored, one task at a time.

    Acknowledgement is early (``task_acks_late`` False): redelivery after a lost worker is the
    lease reaper's job (``claims_repo.requeue_expired``), never the broker's visibility timeout.
    """
    cfg: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "result_backend": None,
        "task_ignore_result": True,
        "task_default_queue": settings.queue,
        "task_routes": {RUN_JOB_TASK: {"queue": settings.queue}},
        "task_acks_late": False,
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": 1,
        "worker_hijack_root_logger": False,
        "broker_heartbeat": 0,
    }
    if is_filesystem(settings):
        cfg["broker_transport_options"] = filesystem_transport_options(settings)
    elif settings.broker_url.startswith(("redis://", "rediss://")):
        timeout = settings.broker_timeout_seconds
        cfg["broker_transport_options"] = {
            "socket_connect_timeout": timeout,
            "socket_timeout": max(timeout, 5.0),
            "visibility_timeout": 7 * 24 * 3600,  # irrelevant with early ack; kept far above any job
        }
    return cfg


def make_celery_client(settings: Settings) -> Celery:
    """A bare Celery app that can only send tasks (no task is registered)."""
    app = Celery("mar-api", set_as_current=False)
    app.conf.update(celery_broker_config(settings))
    return app


def send_run_job(celery: Celery, job_id: str, queue: str) -> bool:
    """Send the ``mar.run_job`` nudge for ``job_id``; False (logged) when the broker is down."""
    try:
        celery.send_task(
            RUN_JOB_TASK,
            args=[job_id],
            queue=queue,
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2},
        )
        return True
    except Exception as e:  # noqa: BLE001 - any broker failure leaves the job queued
        log.warning("could not send %s for job %s (it stays queued): %s", RUN_JOB_TASK, job_id, e)
        return False


def check_broker(celery: Celery, timeout: float) -> None:
    """Raise when the broker cannot be reached within about ``timeout`` seconds."""
    with celery.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
