"""A job's lifecycle: pause, resume, delete, and its training checkpoints (described and
downloaded, also while it runs)."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import StreamingResponse

from api.db import jobs_repo
from api.db.models import Job
from api.deps import ScopeDep, SessionDep, SettingsDep, get_current_key
from api.errors import NotFound
from api.routes.jobs import JobDep, load_job
from api.schemas import ErrorPublic, JobCheckpointPublic, JobCheckpointsPublic, JobPublic
from api.services.job_files import describe_checkpoints, open_checkpoint, remove_job_files, stream_file

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/jobs",
    tags=["jobs"],
    dependencies=[Depends(get_current_key)],
    responses={401: {"model": ErrorPublic}, 404: {"model": ErrorPublic}},
)
CONFLICT = {409: {"model": ErrorPublic}}


@router.post("/{job_id}/pause", response_model=JobPublic, responses=CONFLICT)
def pause_job(job: JobDep, session: SessionDep, scope: ScopeDep) -> Job:
    """Pause: a queued job is ``paused`` at once; a starting/running one is ``pausing`` until
    its worker has stopped the run at a checkpoint (then ``paused``, the worker free). Pausing
    or paused stays; cancelling or finished answers 409."""
    jobs_repo.request_pause(session, job.id)
    session.commit()
    return load_job(session, scope, job.id)


@router.post("/{job_id}/resume", response_model=JobPublic, responses=CONFLICT)
def resume_job(job: JobDep, request: Request, session: SessionDep, scope: ScopeDep) -> Job:
    """Resume a paused job: queued again, it continues from its checkpoint (the same metric
    series, one value per step). 409 unless paused (also while still ``pausing``)."""
    jobs_repo.resume_job(session, job.id)
    session.commit()
    log.info("job %s resumed (queued)", job.id)
    request.app.state.nudge(job.id, job.pool)
    return load_job(session, scope, job.id)


@router.delete(
    "/{job_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=CONFLICT
)
def delete_job(job: JobDep, session: SessionDep, settings: SettingsDep) -> Response:
    """Delete a finished job: its files go, its record stays (marked deleted, with its events
    and metrics) but every route answers 404 for it and lists leave it out; its
    ``Idempotency-Key`` may be used again. 409 for an unfinished job (cancel it first)."""
    paths = [a.path for a in jobs_repo.list_artifacts(session, job.id)]
    jobs_repo.mark_deleted(session, job.id)
    session.commit()
    remove_job_files(settings, job.id, paths)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{job_id}/checkpoints", response_model=JobCheckpointsPublic)
def list_checkpoints(
    job: JobDep, session: SessionDep, settings: SettingsDep, request: Request
) -> JobCheckpointsPublic:
    """The run's ``last`` checkpoint (its resume point) and ``best`` weights (highest AP so far),
    each with its step, AP (when evaluated at that step), size and download URL; null while
    not written."""
    found = describe_checkpoints(session, settings, job.id)
    return JobCheckpointsPublic(
        **{
            name: None
            if info is None
            else JobCheckpointPublic(
                **vars(info), url=str(request.url_for("download_checkpoint", job_id=job.id, which=name))
            )
            for name, info in found.items()
        }
    )


@router.get(
    "/{job_id}/checkpoints/{which}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_checkpoint(
    job: JobDep, which: Literal["last", "best"], settings: SettingsDep
) -> StreamingResponse:
    """The checkpoint file as it is now, with ``X-Checksum-Sha256`` of exactly the bytes sent
    (hashed at download time: the run may rewrite it at any moment)."""
    opened = open_checkpoint(settings, job.id, which)
    if opened is None:
        raise NotFound(f"job {job.id} has no {which} checkpoint (yet)", param="which")
    f, size, digest = opened
    headers = {
        "X-Checksum-Sha256": digest,
        "Content-Length": str(size),
        "Content-Disposition": f'attachment; filename="{which}.pt"',
    }
    return StreamingResponse(stream_file(f), media_type="application/octet-stream", headers=headers)
