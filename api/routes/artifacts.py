"""A job's output files: list, and download with its sha256."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse

from api.db import jobs_repo
from api.deps import SessionDep, SettingsDep, get_current_key
from api.errors import ApiError, Forbidden, NotFound
from api.routes.jobs import JobDep
from api.schemas import ArtifactPublic, ErrorPublic
from mar_core.errors import PathOutsideRootError
from mar_core.paths import resolve_under
from mar_core.spec_limits import CONTROL_FREE_PATTERN

router = APIRouter(
    prefix="/jobs",
    tags=["artifacts"],
    dependencies=[Depends(get_current_key)],
    responses={401: {"model": ErrorPublic}, 404: {"model": ErrorPublic}},
)
MTIME_SLACK_S = 2.0  # file systems with coarse timestamps (the row's time is taken after the write)


class ArtifactChanged(ApiError):
    code = "artifact_changed"
    status_code = 409


def _changed_on_disk(path: FilePath, size: int, recorded_at: float, sha256: str) -> bool:
    """Whether the file is no longer the one recorded. Size and mtime first (a rewrite moves the
    mtime; hashing every download of a large model would cost seconds); only a file that differs
    by them is re-hashed, so a file merely touched still serves."""
    st = path.stat()
    if st.st_size == size and st.st_mtime <= recorded_at + MTIME_SLACK_S:
        return False
    return jobs_repo.file_digest(path) != (size, sha256)


@router.get("/{job_id}/artifacts", response_model=list[ArtifactPublic])
def list_artifacts(job: JobDep, session: SessionDep, request: Request) -> list[ArtifactPublic]:
    """Name, size, sha256 and download URL of every artifact."""
    return [
        ArtifactPublic(
            name=a.name,
            size=a.size,
            sha256=a.sha256,
            created_at=a.created_at,
            url=str(request.url_for("download_artifact", job_id=job.id, name=a.name)),
        )
        for a in jobs_repo.list_artifacts(session, job.id)
    ]


@router.get(
    "/{job_id}/artifacts/{name:path}",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        403: {"model": ErrorPublic},
        409: {"model": ErrorPublic},
    },
)
def download_artifact(
    job: JobDep,
    name: Annotated[str, Path(pattern=CONTROL_FREE_PATTERN, max_length=4096)],
    session: SessionDep,
    settings: SettingsDep,
) -> FileResponse:
    """The file, with ``X-Checksum-Sha256`` (hex) and its size as recorded."""
    art = jobs_repo.get_artifact(session, job.id, name)
    if art is None:
        raise NotFound(f"job {job.id} has no artifact {name!r}", param="name")
    assert settings.artifact_root is not None
    try:
        path = resolve_under(art.path, [settings.artifact_root], "name")
    except PathOutsideRootError:
        raise Forbidden(f"artifact {name!r} lies outside the artifact root", param="name") from None
    if not path.is_file():
        raise NotFound(f"artifact {name!r} is recorded but its file is gone", param="name")
    if _changed_on_disk(path, art.size, art.created_at.timestamp(), art.sha256):
        raise ArtifactChanged(
            f"artifact {name!r} changed on disk since it was recorded: its sha256 is no longer {art.sha256}",
            param="name",
        )
    filename = name.rsplit("/", 1)[-1]
    return FileResponse(
        path,
        filename=filename,
        media_type="application/octet-stream",
        headers={"X-Checksum-Sha256": art.sha256},
    )
