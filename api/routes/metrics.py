"""Metric time series of a job."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from api.db import jobs_repo
from api.deps import SessionDep, get_current_key
from api.routes.jobs import JobDep
from api.schemas import INT64_MAX, ErrorPublic, MetricSeries
from mar_core.spec_limits import CONTROL_FREE_PATTERN

router = APIRouter(
    prefix="/jobs",
    tags=["metrics"],
    dependencies=[Depends(get_current_key)],
    responses={401: {"model": ErrorPublic}, 404: {"model": ErrorPublic}},
)


@router.get("/{job_id}/metrics", response_model=MetricSeries)
def get_metrics(
    job: JobDep,
    session: SessionDep,
    names: Annotated[
        str | None,
        Query(max_length=4096, pattern=CONTROL_FREE_PATTERN, description="comma-separated metric names"),
    ] = None,
    since: Annotated[int | None, Query(ge=0, le=INT64_MAX, description="only steps >= since")] = None,
) -> MetricSeries:
    """``{"job_id", "series": {name: [{step, value, time}, ...]}}``, each series by step.

    Serialised here, not through ``MetricSeries`` (which documents the shape): validating
    10,000 points one by one cost most of the request time."""
    wanted = [n.strip() for n in names.split(",") if n.strip()] if names else None
    series: dict[str, list[dict[str, Any]]] = {}
    for name, step, value, time in jobs_repo.get_metrics(session, job.id, names=wanted, since_step=since):
        series.setdefault(name, []).append({"step": step, "value": value, "time": iso_utc(time)})
    return JSONResponse({"job_id": job.id, "series": series})


def iso_utc(t: datetime) -> str:
    """``2026-11-24T23:06:54.727371Z``, as pydantic writes an aware UTC datetime."""
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
