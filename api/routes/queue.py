"""The queue as seen by a key (``GET /queue``) and projects' quotas (set by an admin key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from api.db import keys_repo, quota_repo, scheduling
from api.db.models import utcnow
from api.deps import CurrentKey, ScopeDep, SessionDep, SettingsDep, get_current_key
from api.errors import Forbidden, NotFound
from api.schemas import ErrorPublic, QueuePublic, QuotaIn, QuotaPublic, QuotaUsage

router = APIRouter(
    tags=["queue"],
    dependencies=[Depends(get_current_key)],
    responses={401: {"model": ErrorPublic}, 422: {"model": ErrorPublic}},
)

ProjectName = Annotated[str, Path(pattern=f"^{keys_repo.PROJECT_NAME.pattern}$", description="a project")]


@router.get("/queue", response_model=QueuePublic)
def get_queue(session: SessionDep, settings: SettingsDep, scope: ScopeDep) -> QueuePublic:
    """Per pool: live workers' slots, running and waiting counts, the measured seconds per step,
    and your project's waiting jobs in the order workers take them (an admin key: everyone's),
    each with its position and an ETA; a pool with no live worker says so in ``note``."""
    view = scheduling.queue_view(session, settings.pools, settings.worker_stale_after, scope, utcnow())
    session.commit()
    return QueuePublic.model_validate({"pools": view})


def _quota(session, project: str) -> QuotaPublic:
    row = quota_repo.get_quota(session, project)
    use = quota_repo.usage(session, project)
    return QuotaPublic(
        project=project,
        max_running=row.max_running if row else None,
        max_queued=row.max_queued if row else None,
        gpu_hours_per_day=row.gpu_hours_per_day if row else None,
        usage=QuotaUsage(**use.as_dict()),
    )


@router.get("/projects/{project}/quota", response_model=QuotaPublic, responses={404: {"model": ErrorPublic}})
def get_quota(project: ProjectName, session: SessionDep, scope: ScopeDep) -> QuotaPublic:
    """A project's limits and what it uses now (its own keys, or an admin key)."""
    if scope is not None and scope != project:
        raise NotFound("project not found", param="project")
    out = _quota(session, project)
    session.commit()
    return out


@router.put(
    "/projects/{project}/quota",
    response_model=QuotaPublic,
    responses={403: {"model": ErrorPublic}, 404: {"model": ErrorPublic}},
)
def put_quota(
    project: ProjectName, session: SessionDep, key: CurrentKey, body: QuotaIn | None = None
) -> QuotaPublic:
    """Set a project's limits (admin keys only): the fields sent (null: no limit); the others
    keep their value. Jobs already queued stay; ``max_running`` applies at the next claim.
    Another project than the key's own is a 404 for a key that is not an admin's."""
    if not key.admin and key.project != project:
        raise NotFound("project not found", param="project")
    if not key.admin:
        raise Forbidden("setting a quota needs an admin key", param="Authorization")
    if not keys_repo.project_exists(session, project):
        raise NotFound("project not found", param="project")
    limits = body.model_dump(exclude_unset=True) if body is not None else {}
    quota_repo.set_quota(session, project, **limits)
    session.commit()
    return _quota(session, project)
