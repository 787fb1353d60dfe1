"""Metric time series of a job."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from api.db import metrics_repo
from api.deps import SessionDep, get_current_key
from api.routes.jobs import JobDep
from api.schemas import INT64_MAX, ErrorPublic, MetricColumns, MetricSeries
from api.services.metric_series import SeriesFormat, series_body
from mar_core.spec_limits import CONTROL_FREE_PATTERN

router = APIRouter(
    prefix="/jobs",
    tags=["metrics"],
    dependencies=[Depends(get_current_key)],
    responses={401: {"model": ErrorPublic}, 404: {"model": ErrorPublic}},
)


@router.get(
    "/{job_id}/metrics",
    response_model=MetricSeries | MetricColumns,
    responses={304: {"description": "the series did not change since the ETag given in If-None-Match"}},
)
def get_metrics(
    job: JobDep,
    session: SessionDep,
    request: Request,
    names: Annotated[
        str | None,
        Query(max_length=4096, pattern=CONTROL_FREE_PATTERN, description="comma-separated metric names"),
    ] = None,
    since: Annotated[int | None, Query(ge=0, le=INT64_MAX, description="only steps >= since")] = None,
    format: Annotated[  # noqa: A002 - the query parameter's name
        SeriesFormat, Query(description="points: [{step, value, time}]; columns: {step: [], value: []}")
    ] = "points",
    max_points: Annotated[
        int | None,
        Query(ge=2, le=1_000_000, description="at most this many points per series, evenly spaced"),
    ] = None,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match", max_length=256)] = None,
) -> Response:
    """``{"job_id", "series"}``, each series by step. The ``ETag`` changes with every metric
    write of the job: a poller that sends it back as ``If-None-Match`` gets a 304 while nothing
    changed. Bodies are built once per write and query, then served from the API's cache
    (``MAR_METRICS_CACHE_BYTES``), so many clients of a running job cost one read per write."""
    etag = f'"m{job.metrics_rev}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if if_none_match is not None and etag in (t.strip() for t in if_none_match.split(",")):
        return Response(status_code=304, headers=headers)
    wanted = tuple(n.strip() for n in names.split(",") if n.strip()) if names else None

    def build() -> bytes:
        rows = metrics_repo.get_metrics(
            session, job.id, names=wanted, since_step=since, with_time=format == "points"
        )
        return series_body(job.id, rows, format, max_points)

    key = (job.id, job.metrics_rev, wanted, since, format, max_points)
    body = request.app.state.metrics_cache.get_or_build(key, build)
    return Response(content=body, media_type="application/json", headers=headers)
