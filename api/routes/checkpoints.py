"""Teacher checkpoint upload."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, status
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.deps import CurrentKey, SettingsDep, get_current_key
from api.errors import InvalidRequest
from api.openapi import multipart_upload_body
from api.schemas import CheckpointPublic, ErrorPublic
from api.services.uploads import ALLOWED_SUFFIXES, check_upload_length, store_checkpoint

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
    "", response_model=CheckpointPublic, status_code=status.HTTP_201_CREATED, openapi_extra=_UPLOAD_BODY
)
async def upload_checkpoint(request: Request, settings: SettingsDep, key: CurrentKey) -> CheckpointPublic:
    """Store a teacher under a generated name; name it in a job spec by the returned ``id``
    (``{"teacher": {"upload": id}}``; the ``path``, relative to the checkpoint root, is the older
    ``teacher.checkpoint`` form). The key is checked and the size read from
    ``Content-Length`` before the body is; a pickle ``torch.load(weights_only=True)`` would refuse
    (one that runs code) is a 422 naming its first forbidden global (it is never unpickled here)."""
    check_upload_length(request, settings.max_upload_bytes)
    assert settings.checkpoint_root is not None
    async with request.form(max_files=1, max_fields=1) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("file: required (a multipart file field)", param="file")
        path, size, digest = await run_in_threadpool(
            store_checkpoint,
            upload.file,
            upload.filename,
            settings.checkpoint_root,
            settings.max_upload_bytes,
            key.project,
        )
    rel = path.relative_to(settings.checkpoint_root).as_posix()
    return CheckpointPublic(id=path.stem, path=rel, name=path.name, size=size, sha256=digest)
