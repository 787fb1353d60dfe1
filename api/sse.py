"""Server-Sent Events of one job, by polling the database.

Each event goes out as ``id: <Event.id>``, ``event: <type>``, ``data: <JSON>``. The stream starts
after ``Last-Event-ID`` (or ``?after=``), sends a ``: keep-alive`` comment when idle, and ends
once the job is terminal and every event up to its terminal one is sent (the status is read
before the events, and the terminal event is written in the same transaction as the status), or
as soon as the API key that opened it is revoked.

Progress is stored as event rows at milestones only (``worker.progress_sink``); in between, the
stream sends the job row's progress live as a ``progress`` frame with no ``id:`` line (it has no
row: a client resuming with ``Last-Event-ID`` keeps its place among the stored events).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from sqlalchemy.orm import Session, sessionmaker

from api.db import events_repo, jobs_repo, keys_repo, states
from api.db.models import Event, utcnow
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


def format_live_progress(job_id: str, step: int, total: int) -> str:
    """One SSE frame of the job row's progress: no ``id:`` line, ``"id": null`` in its data."""
    payload = {
        "id": None,
        "job_id": job_id,
        "type": "progress",
        "data": {"step": step, "total": total},
        "created_at": utcnow().isoformat(),
    }
    return f"event: progress\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


def _poll(
    factory: sessionmaker[Session], job_id: str, after: int | None, key_id: str | None
) -> tuple[str | None, tuple[int, int] | None, list[Event]]:
    """The job's status, its row's progress ``(step, total)`` (None before the first) and its
    next events; status None (the stream ends) when the job is gone or the key that opened the
    stream was revoked since."""
    with session_scope(factory) as s:
        if key_id is not None and not keys_repo.is_active(s, key_id):
            return None, None, []
        job = jobs_repo.get_job(s, job_id)
        if job is None:
            return None, None, []
        progress = (job.progress_step, job.progress_total) if job.progress_total else None
        return job.status, progress, events_repo.get_events(s, job_id, after_id=after, limit=500)


def _ahead(progress: tuple[int, int] | None, sent: tuple[int, int] | None) -> bool:
    """Whether the job row's ``progress`` is news after what the stream ``sent``: a later step
    (or another total). The row is read before the events, so events committed in between may
    already have sent a later step: live progress never goes back."""
    if progress is None:
        return False
    return sent is None or progress[1] != sent[1] or progress[0] > sent[0]


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
    progress_sent: tuple[int, int] | None = None
    while True:
        status, progress, events = await anyio.to_thread.run_sync(_poll, factory, job_id, after, key_id)
        for ev in events:
            ending = ev.type == "status" and ev.data.get("status") in states.TERMINAL
            if ending and _ahead(progress, progress_sent):
                yield format_live_progress(job_id, *progress)  # the last progress before the end
                progress_sent = progress
            yield format_event(ev)
            after = ev.id
            last_sent = time.monotonic()
            if ev.type == "progress":
                progress_sent = (ev.data.get("step"), ev.data.get("total"))
        if _ahead(progress, progress_sent) and len(events) < 500:
            yield format_live_progress(job_id, *progress)
            progress_sent, last_sent = progress, time.monotonic()
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
