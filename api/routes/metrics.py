"""Metric time series of a job."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.db import jobs_repo
from api.deps import SessionDep, get_current_key
from api.routes.jobs import JobDep
from api.schemas import ErrorPublic, MetricPoint, MetricSeries

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
    names: Annotated[str | None, Query(description="comma-separated metric names")] = None,
    since: Annotated[int | None, Query(ge=0, description="only steps >= since")] = None,
) -> MetricSeries:
    """``{"job_id", "series": {name: [{step, value, time}, ...]}}``, each series by step."""
    wanted = [n.strip() for n in names.split(",") if n.strip()] if names else None
    series: dict[str, list[MetricPoint]] = {}
    for m in jobs_repo.get_metrics(session, job.id, names=wanted, since_step=since):
        series.setdefault(m.name, []).append(MetricPoint(step=m.step, value=m.value, time=m.time))
    return MetricSeries(job_id=job.id, series=series)
