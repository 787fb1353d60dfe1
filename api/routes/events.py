"""Events of a job: a JSON list, and a live Server-Sent Events stream."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from api.db import events_repo
from api.deps import CurrentKey, SessionDep, SessionFactoryDep, get_current_key
from api.routes.jobs import JobDep
from api.schemas import EVENT_ID_PATTERN, INT64_MAX, ErrorPublic, EventPublic
from api.sse import job_event_stream

router = APIRouter(
    prefix="/jobs",
    tags=["events"],
    dependencies=[Depends(get_current_key)],
    responses={401: {"model": ErrorPublic}, 404: {"model": ErrorPublic}},
)


@router.get("/{job_id}/events", response_model=list[EventPublic])
def list_events(
    job: JobDep,
    session: SessionDep,
    after: Annotated[
        int | None, Query(ge=0, le=INT64_MAX, description="only events with a larger id")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> list[EventPublic]:
    """Events in id order."""
    events = events_repo.get_events(session, job.id, after_id=after, limit=limit)
    return [EventPublic.model_validate(e) for e in events]


@router.get(
    "/{job_id}/events/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "SSE: id, event (type), data (JSON)"}
    },
)
def stream_events(
    job: JobDep,
    request: Request,
    session: SessionDep,
    factory: SessionFactoryDep,
    key: CurrentKey,
    after: Annotated[int | None, Query(ge=0, le=INT64_MAX)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", pattern=EVENT_ID_PATTERN)] = None,
) -> StreamingResponse:
    """Live events; resumes after ``Last-Event-ID`` (or ``?after=``); ends when the job is
    finished and all its events are sent, or when the API key is revoked."""
    if last_event_id:  # digits only (the pattern), at most 18: within int64
        after = int(last_event_id)
    session.close()  # the stream polls with short sessions of its own; hold no connection
    state = request.app.state
    stream = job_event_stream(
        factory,
        job.id,
        after,
        request.is_disconnected,
        poll_seconds=state.sse_poll_seconds,
        keepalive_seconds=state.sse_keepalive_seconds,
        key_id=key.id,
    )
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)
