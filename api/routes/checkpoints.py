"""Teacher checkpoint upload."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Request, UploadFile, status

from api.deps import CurrentKey, SettingsDep, get_current_key
from api.errors import PayloadTooLarge
from api.schemas import CheckpointPublic, ErrorPublic
from api.services.uploads import ALLOWED_SUFFIXES, store_checkpoint

router = APIRouter(
    prefix="/checkpoints",
    tags=["checkpoints"],
    dependencies=[Depends(get_current_key)],
    responses={401: {"model": ErrorPublic}, 413: {"model": ErrorPublic}, 422: {"model": ErrorPublic}},
)


@router.post("", response_model=CheckpointPublic, status_code=status.HTTP_201_CREATED)
def upload_checkpoint(
    request: Request,
    settings: SettingsDep,
    key: CurrentKey,
    file: Annotated[UploadFile, File(description=f"a teacher state_dict ({', '.join(ALLOWED_SUFFIXES)})")],
) -> CheckpointPublic:
    """Store a teacher under a generated name; use the returned ``path`` as
    ``teacher.checkpoint``. The file is not unpickled here (the worker loads it safely)."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.max_upload_bytes + 64 * 1024:
        raise PayloadTooLarge(
            f"file: larger than the limit of {settings.max_upload_bytes} bytes", param="file"
        )
    assert settings.checkpoint_root is not None
    path, size, digest = store_checkpoint(
        file.file, file.filename, settings.checkpoint_root, settings.max_upload_bytes, key.project
    )
    return CheckpointPublic(path=str(path), name=path.name, size=size, sha256=digest)
