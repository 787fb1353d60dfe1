"""Teacher checkpoint uploads: content-addressed (sha256) within a project."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.deps import CurrentKey, SettingsDep, get_current_key
from api.errors import InvalidRequest, NotFound
from api.openapi import multipart_upload_body
from api.schemas import SHA256_PATTERN, CheckpointPublic, ErrorPublic
from api.services.uploads import ALLOWED_SUFFIXES, check_upload_length, find_checkpoint, store_checkpoint

router = APIRouter(
    prefix="/checkpoints",
    tags=["checkpoints"],
    dependencies=[Depends(get_current_key)],
    responses={
        401: {"model": ErrorPublic},
        411: {"model": ErrorPublic},
        413: {"model": ErrorPublic},
        422: {"model": ErrorPublic},
    },
)

_UPLOAD_BODY = multipart_upload_body(
    f"a teacher state_dict ({', '.join(ALLOWED_SUFFIXES)}; the file name's suffix, else the content, "
    "tells which)"
)


@router.post(
    "",
    response_model=CheckpointPublic,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_UPLOAD_BODY,
    responses={200: {"model": CheckpointPublic, "description": "the project already had these bytes"}},
)
async def upload_checkpoint(
    request: Request, response: Response, settings: SettingsDep, key: CurrentKey
) -> CheckpointPublic:
    """Store a teacher, named by its content's sha256; name it in a job spec by the returned
    ``id`` (``{"teacher": {"upload": id}}``; the ``path``, relative to the checkpoint root, is the
    older ``teacher.checkpoint`` form). The same bytes uploaded again answer 200 with the first
    upload (``GET /checkpoints/{sha256}`` asks before sending). The key is checked and the size
    read from ``Content-Length`` before the body is; a pickle ``torch.load(weights_only=True)``
    would refuse (one that runs code) is a 422 naming its first forbidden global (it is never
    unpickled here)."""
    check_upload_length(request, settings.max_upload_bytes)
    assert settings.checkpoint_root is not None
    async with request.form(max_files=1, max_fields=1) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("file: required (a multipart file field)", param="file")
        path, size, digest, created = await run_in_threadpool(
            store_checkpoint,
            upload.file,
            upload.filename,
            settings.checkpoint_root,
            settings.max_upload_bytes,
            key.project,
        )
    if not created:
        response.status_code = status.HTTP_200_OK
    return _public(path, settings.checkpoint_root, size, digest)


@router.get("/{sha256}", response_model=CheckpointPublic, responses={404: {"model": ErrorPublic}})
def get_checkpoint(
    sha256: Annotated[str, Path(pattern=SHA256_PATTERN, description="the file's sha256, hex")],
    settings: SettingsDep,
    key: CurrentKey,
) -> CheckpointPublic:
    """The project's upload with this content (a client asks before it sends), or 404."""
    assert settings.checkpoint_root is not None
    path = find_checkpoint(settings.checkpoint_root, key.project, sha256)
    if path is None:
        raise NotFound(f"checkpoint {sha256} not found", param="sha256")
    return _public(path, settings.checkpoint_root, path.stat().st_size, sha256)


def _public(path: FsPath, root: FsPath, size: int, digest: str) -> CheckpointPublic:
    rel = path.relative_to(root).as_posix()
    return CheckpointPublic(id=path.stem, path=rel, name=path.name, size=size, sha256=digest)
