"""Datasets: upload an archive, list, read, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.db import datasets_repo
from api.db.models import Dataset
from api.db.paging import CURSOR_PATTERN
from api.deps import CurrentKey, ScopeDep, SessionDep, SettingsDep, get_current_key
from api.errors import InvalidRequest, NotFound
from api.openapi import multipart_upload_body
from api.schemas import ID_PATTERN, SHA256_PATTERN, DatasetPublic, DatasetsPublic, ErrorPublic
from api.services.archives import ARCHIVE_SUFFIXES
from api.services.datasets import delete_dataset, store_dataset
from api.services.uploads import check_upload_length
from mar_core import names

router = APIRouter(
    prefix="/datasets",
    tags=["datasets"],
    dependencies=[Depends(get_current_key)],
    responses={401: {"model": ErrorPublic}, 422: {"model": ErrorPublic}},
)

DatasetId = Annotated[str, Path(pattern=ID_PATTERN, description="a dataset id")]

_UPLOAD_BODY = multipart_upload_body(
    f"the dataset as an archive ({', '.join(ARCHIVE_SUFFIXES)}; the file name's suffix, else the "
    "content, tells which)",
    name={"type": "string", "maxLength": 200},
    format={"type": "string", "enum": list(names.DATASET_FORMATS)},
    on_bad_image={"type": "string", "enum": list(names.ON_BAD_IMAGE), "default": "refuse"},
)


def _form_text(value: object, field: str, max_length: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length or "\x00" in value:
        raise InvalidRequest(f"{field}: must be text of at most {max_length} characters", param=field)
    return value.strip() or None


@router.post(
    "",
    response_model=DatasetPublic,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_UPLOAD_BODY,
    responses={
        200: {
            "model": DatasetPublic,
            "description": "the project already had this archive: the first dataset",
        },
        411: {"model": ErrorPublic},
        413: {"model": ErrorPublic},
    },
)
async def upload_dataset(
    request: Request, response: Response, session: SessionDep, settings: SettingsDep, key: CurrentKey
) -> Dataset:
    """Upload a dataset archive (COCO, Pascal VOC or YOLO layout; ``format`` detected unless
    given). The key is checked and the size read from ``Content-Length`` before the body is; the
    archive is extracted safely and validated (every image decoded), and refused with a 422 naming
    the file and image or line at fault; ``on_bad_image=skip`` leaves undecodable images out
    (counted in the report) instead, and the jobs on the dataset skip them too. Use the returned
    ``id`` as ``{"dataset": {"id": ...}}`` in a job spec. The same archive bytes uploaded again
    by the project with the same options answer 200 with the first dataset (``GET
    /datasets?sha256=`` asks before sending)."""
    check_upload_length(request, settings.max_dataset_upload_bytes)
    async with request.form(max_files=1, max_fields=5) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("file: required (a multipart file field)", param="file")
        name = _form_text(form.get("name"), "name", 200)
        fmt = _form_text(form.get("format"), "format", 16)
        if fmt is not None and fmt not in names.DATASET_FORMATS:
            raise InvalidRequest(
                f"format: unknown {fmt!r}; valid: {', '.join(names.DATASET_FORMATS)}", param="format"
            )
        on_bad_image = _form_text(form.get("on_bad_image"), "on_bad_image", 16) or "refuse"
        if on_bad_image not in names.ON_BAD_IMAGE:
            valid = ", ".join(names.ON_BAD_IMAGE)
            raise InvalidRequest(
                f"on_bad_image: unknown {on_bad_image!r}; valid: {valid}", param="on_bad_image"
            )
        dataset, created = await run_in_threadpool(
            store_dataset,
            session,
            upload.file,
            upload.filename,
            settings,
            name,
            fmt,
            key.project,
            on_bad_image,
        )
    if not created:
        response.status_code = status.HTTP_200_OK
    return dataset


@router.get("", response_model=DatasetsPublic)
def list_datasets(
    session: SessionDep,
    scope: ScopeDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(pattern=CURSOR_PATTERN, description="next_cursor of the previous page")
    ] = None,
    sha256: Annotated[
        str | None,
        Query(pattern=SHA256_PATTERN, description="only those uploaded as an archive of this sha256"),
    ] = None,
) -> DatasetsPublic:
    """Uploaded datasets, newest first, one page at a time."""
    rows, next_cursor = datasets_repo.list_datasets(
        session, limit=limit, cursor=cursor, project=scope, archive_sha256=sha256
    )
    return DatasetsPublic(
        data=[DatasetPublic.model_validate(r) for r in rows], count=len(rows), next_cursor=next_cursor
    )


@router.get("/{dataset_id}", response_model=DatasetPublic, responses={404: {"model": ErrorPublic}})
def get_dataset(dataset_id: DatasetId, session: SessionDep, scope: ScopeDep) -> Dataset:
    """One dataset: format, splits, counts per split and class, size buckets, warnings."""
    row = datasets_repo.get_dataset(session, dataset_id, project=scope)
    if row is None:
        raise NotFound(f"dataset {dataset_id} not found", param="dataset_id")
    return row


@router.delete(
    "/{dataset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={404: {"model": ErrorPublic}, 409: {"model": ErrorPublic}},
)
def remove_dataset(
    dataset_id: DatasetId, session: SessionDep, settings: SettingsDep, scope: ScopeDep
) -> Response:
    """Delete the dataset's files and record; 409 while a queued or running job reads it."""
    delete_dataset(session, dataset_id, settings, scope)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
