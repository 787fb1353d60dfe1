"""Which jobs have a ``mar.run_job`` message waiting in the broker queue, read without taking it.

Redis (kombu keeps a queue as a list per priority) and ``filesystem://`` (one file per message)
are read; any other transport answers None (unknown). A message body is Celery's protocol 2
``[args, kwargs, embed]``, base64-encoded; ``args[0]`` is the job id.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

from api.broker import RUN_JOB_TASK, is_filesystem
from api.settings import Settings

logger = logging.getLogger(__name__)


def _job_id(raw: bytes | str) -> str | None:
    try:
        msg = json.loads(raw)
        if msg.get("headers", {}).get("task") != RUN_JOB_TASK:
            return None
        body = msg["body"]
        if msg.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return str(args[0]) if args else None
    except (ValueError, KeyError, IndexError, TypeError):
        logger.debug("unreadable message in the queue", exc_info=True)
        return None


def queued_message_job_ids(celery_app, settings: Settings) -> set[str] | None:
    """The job ids of the messages waiting in the queues of every pool (``settings.pools``);
    None when the transport cannot be read this way."""
    queues = sorted({settings.pool_queue(p) for p in settings.pools})
    if is_filesystem(settings):
        folder = Path(celery_app.conf.broker_transport_options["data_folder_in"])
        ids = set()
        for queue in queues:
            for f in folder.glob(f"*.{queue}.msg"):
                try:
                    ids.add(_job_id(f.read_bytes()))
                except FileNotFoundError:  # taken by a worker meanwhile
                    continue
        return {i for i in ids if i}
    if not settings.broker_url.startswith(("redis://", "rediss://")):
        return None
    with celery_app.connection_for_read() as conn:
        channel = conn.default_channel
        client = channel.client
        ids: set[str] = set()
        for queue in queues:
            for pri in channel.priority_steps:
                for raw in client.lrange(channel._q_for_pri(queue, pri), 0, -1):
                    job_id = _job_id(raw)
                    if job_id:
                        ids.add(job_id)
        return ids
