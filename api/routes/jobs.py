"""Jobs: submit, list, read, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status

from api.db import jobs_repo, scheduling, states
from api.db.models import Job
from api.db.paging import CURSOR_PATTERN
from api.deps import CurrentKey, ScopeDep, SessionDep, SettingsDep, get_current_key
from api.errors import InvalidRequest
from api.schemas import (
    ID_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    ErrorPublic,
    JobCreated,
    JobPublic,
    JobsPublic,
)
from api.services.submit import IDEMPOTENCY_HEADER, submit_job
from mar_core.spec import JobSpec

router = APIRouter(
    prefix="/jobs",
    tags=["jobs"],
    dependencies=[Depends(get_current_key)],
    responses={401: {"model": ErrorPublic}, 422: {"model": ErrorPublic}},
)


JobId = Annotated[str, Path(pattern=ID_PATTERN, description="a job id")]
# One state, or several separated by commas.
STATUS_PATTERN = "^({0})(,({0}))*$".format("|".join(states.ALL_STATES))


def load_job(session: SessionDep, scope: ScopeDep, job_id: JobId) -> Job:
    """The job of the path, or 404 (also when it belongs to another project)."""
    job = jobs_repo.get_job(session, job_id, project=scope)
    if job is None:
        raise states.JobNotFoundError(f"job {job_id} not found", param="job_id")
    return job


JobDep = Annotated[Job, Depends(load_job)]


@router.post(
    "",
    response_model=JobCreated,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": JobCreated, "description": "an Idempotency-Key replay: the earlier job"},
        403: {"model": ErrorPublic},
        409: {"model": ErrorPublic, "description": "over a quota that waiting does not lift"},
        429: {"model": ErrorPublic, "description": "over the project's quota; see Retry-After"},
    },
)
def create_job(
    spec: JobSpec,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    key: CurrentKey,
    scope: ScopeDep,
    idempotency_key: Annotated[
        str | None, Header(alias=IDEMPOTENCY_HEADER, pattern=IDEMPOTENCY_KEY_PATTERN)
    ] = None,
) -> Job:
    """Queue a job. 201 with the new job; with an ``Idempotency-Key`` already used for the same
    body, 200 with that earlier job; the same key with another body is a 422 naming the header.
    Over the project's quota: 429 with ``Retry-After`` (409 where waiting cannot help), nothing
    stored; ``priority: "high"`` from a key not allowed it: 403."""
    job, created = submit_job(
        session,
        spec,
        settings,
        request.app.state.nudge,
        idempotency_key,
        project=key.project,
        scope=scope,
        allow_high=key.admin or key.high_priority,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return job


@router.get("", response_model=JobsPublic)
def list_jobs(
    session: SessionDep,
    settings: SettingsDep,
    scope: ScopeDep,
    status_: Annotated[
        str | None,
        Query(
            alias="status", pattern=STATUS_PATTERN, description="one status, or several separated by commas"
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(pattern=CURSOR_PATTERN, description="next_cursor of the previous page")
    ] = None,
) -> JobsPublic:
    """Jobs, newest first, one page at a time."""
    wanted = [s.strip() for s in status_.split(",") if s.strip()] if status_ else None
    unknown = sorted(set(wanted or ()) - set(states.ALL_STATES))
    if unknown:
        raise InvalidRequest(
            f"status: unknown {', '.join(unknown)}; valid: {', '.join(states.ALL_STATES)}", param="status"
        )
    jobs, next_cursor = jobs_repo.list_jobs(session, status=wanted, limit=limit, cursor=cursor, project=scope)
    return JobsPublic(data=public_jobs(session, settings, jobs), count=len(jobs), next_cursor=next_cursor)


def public_jobs(session: SessionDep, settings: SettingsDep, jobs: list[Job]) -> list[JobPublic]:
    """The jobs as answered: a queued one whose pool has no live worker says so (``waiting``)."""
    notes = scheduling.waiting_notes(session, jobs, settings.default_pool, settings.worker_stale_after)
    return [JobPublic.model_validate(j).model_copy(update={"waiting": notes.get(j.id)}) for j in jobs]


@router.get("/{job_id}", response_model=JobPublic, responses={404: {"model": ErrorPublic}})
def get_job(job: JobDep, session: SessionDep, settings: SettingsDep) -> JobPublic:
    """One job (a queued one whose pool has no live worker says so in ``waiting``)."""
    return public_jobs(session, settings, [job])[0]


@router.post(
    "/{job_id}/cancel",
    response_model=JobPublic,
    responses={404: {"model": ErrorPublic}, 409: {"model": ErrorPublic}},
)
def cancel_job(job: JobDep, session: SessionDep, scope: ScopeDep) -> Job:
    """Cancel: a queued job is cancelled at once, a starting/running one goes to ``cancelling``
    until its worker stops; a finished job answers 409."""
    jobs_repo.request_cancel(session, job.id)
    session.commit()
    return load_job(session, scope, job.id)
