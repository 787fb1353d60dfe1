"""Server-Sent Events of one job, by polling the database.

Each event goes out as ``id: <Event.id>``, ``event: <type>``, ``data: <JSON>``. The stream starts
after ``Last-Event-ID`` (or ``?after=``), sends a ``: keep-alive`` comment when idle, and ends
once the job is terminal and every event up to its terminal one is sent (the status is read
before the events, and the terminal event is written in the same transaction as the status), or
as soon as the API key that opened it is revoked.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from sqlalchemy.orm import Session, sessionmaker

from api.db import jobs_repo, keys_repo, states
from api.db.models import Event
from api.db.session import session_scope

RETRY_MS = 2000


def format_event(ev: Event) -> str:
    """One SSE frame."""
    payload = {
        "id": ev.id,
        "job_id": ev.job_id,
        "type": ev.type,
        "data": ev.data,
        "created_at": ev.created_at.isoformat(),
    }
    return f"id: {ev.id}\nevent: {ev.type}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


def _poll(
    factory: sessionmaker[Session], job_id: str, after: int | None, key_id: str | None
) -> tuple[str | None, list[Event]]:
    """The job's status and its next events; status None (the stream ends) when the job is gone
    or the key that opened the stream was revoked since."""
    with session_scope(factory) as s:
        if key_id is not None and not keys_repo.is_active(s, key_id):
            return None, []
        job = jobs_repo.get_job(s, job_id)
        status = job.status if job else None
        return status, jobs_repo.get_events(s, job_id, after_id=after, limit=500)


async def job_event_stream(
    factory: sessionmaker[Session],
    job_id: str,
    after: int | None,
    is_disconnected: Callable[[], Any],
    poll_seconds: float = 0.5,
    keepalive_seconds: float = 15.0,
    key_id: str | None = None,
) -> AsyncIterator[str]:
    """Yield SSE frames for ``job_id`` until it is terminal and flushed, the client leaves, or
    the API key ``key_id`` is revoked."""
    yield f"retry: {RETRY_MS}\n\n"
    last_sent = time.monotonic()
    while True:
        status, events = await anyio.to_thread.run_sync(_poll, factory, job_id, after, key_id)
        for ev in events:
            yield format_event(ev)
            after = ev.id
            last_sent = time.monotonic()
        if status is None or (status in states.TERMINAL and len(events) < 500):
            return
        if events:
            continue  # a full batch: read the next one at once
        if await is_disconnected():
            return
        if time.monotonic() - last_sent >= keepalive_seconds:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        await anyio.sleep(poll_seconds)
