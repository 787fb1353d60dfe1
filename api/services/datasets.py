"""Uploaded datasets: store an archive (extract safely, validate, rename into place), check a
job's ``dataset.id``, delete.

An upload is written to ``<dataset_root>/.incoming/`` (archive and extraction), validated there
by the torch-free readers, then renamed to ``<dataset_root>/<id>``: a refused upload leaves
nothing behind, and a dataset folder exists only with its database row.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from api.db import datasets_repo
from api.db.models import DEFAULT_PROJECT, Dataset, new_id
from api.errors import ApiError, InvalidRequest, NotFound
from api.services.archives import ExtractLimits, archive_kind, dataset_folder, extract_archive
from api.services.uploads import copy_limited
from api.settings import Settings
from mar_core.annotations.coco import SPLIT_ALIASES
from mar_core.annotations.inspect import detect_format, find_splits, inspect_dataset
from mar_core.errors import DatasetError, SpecError
from mar_core.spec import DatasetSpec, JobSpec

log = logging.getLogger(__name__)

INCOMING = ".incoming"


class DatasetInUse(ApiError):
    """A dataset that queued or running jobs read cannot be deleted (HTTP 409)."""

    code = "dataset_in_use"
    status_code = 409


def _public_message(e: DatasetError, folder: Path) -> str:
    """The validation message with the server's folder left out (paths relative to the archive)."""
    return e.message.replace(f"{folder}/", "").replace(str(folder), ".")


def store_dataset(
    session: Session,
    src: BinaryIO,
    filename: str | None,
    settings: Settings,
    name: str | None = None,
    fmt: str | None = None,
    project: str = DEFAULT_PROJECT,
    on_bad_image: str = "refuse",
) -> tuple[Dataset, bool]:
    """Store and validate an uploaded archive as a dataset of ``project``; returns the committed
    ``Dataset`` and whether it is new: the same archive bytes uploaded again by the project with
    the same options return the first dataset (``False``), neither extracted nor checked again.
    Every image is decoded: an undecodable one is refused, or left out (counted in the report,
    which records ``on_bad_image``) when ``on_bad_image`` is ``"skip"``.

    422 naming ``file`` for an unsafe archive or invalid data (the message names the file and
    image or line at fault), ``format`` for an unknown format; 413 past the upload limit."""
    assert settings.dataset_root is not None
    incoming = settings.dataset_root / INCOMING
    incoming.mkdir(parents=True, exist_ok=True)
    dataset_id = new_id()
    archive, work = incoming / f"{dataset_id}.archive", incoming / dataset_id
    final = settings.dataset_root / dataset_id
    try:
        with open(archive, "wb") as out:
            size, digest = copy_limited(src, out, settings.max_dataset_upload_bytes)
        existing = datasets_repo.find_upload(session, project, digest, fmt, on_bad_image)
        if existing is not None:
            return existing, False
        kind = archive_kind(filename, archive)
        work.mkdir()
        limits = ExtractLimits(settings.max_dataset_files, settings.max_dataset_expanded_bytes)
        extracted = extract_archive(archive, kind, work, limits)
        archive.unlink()
        root = dataset_folder(work)
        try:
            fmt = fmt or detect_format(root)
            spec = DatasetSpec(format=fmt, path=str(root), on_bad_image=on_bad_image)
            splits = find_splits(root, fmt)
            report = inspect_dataset(spec, [work], splits=splits)
        except DatasetError as e:
            raise InvalidRequest(f"file: {_public_message(e, root)}", param="file") from None
        work.rename(final)
        dataset = Dataset(
            id=dataset_id,
            project=project,
            name=name or Path(filename or dataset_id).name.split(".")[0] or dataset_id,
            format=fmt,
            path=str(final / root.relative_to(work)),
            splits=splits,
            report={**report.to_dict(), "on_bad_image": on_bad_image},
            archive_size=size,
            archive_sha256=digest,
            files=extracted.files,
            expanded_size=extracted.bytes,
        )
        datasets_repo.add_dataset(session, dataset)
        session.commit()
    except BaseException:
        session.rollback()
        for leftover in (work, final):
            shutil.rmtree(leftover, ignore_errors=True)
        raise
    finally:
        archive.unlink(missing_ok=True)
    log.info("dataset %s stored (%s, %d files, splits %s)", dataset_id, fmt, extracted.files, splits)
    return dataset, True


def bad_image_policy(ds: DatasetSpec, row: Dataset) -> str:
    """The job's ``on_bad_image`` on an uploaded dataset: the spec's when set, else the upload's;
    422 naming the field when the spec refuses images the upload left out."""
    stored = row.report.get("on_bad_image", "refuse")
    if "on_bad_image" not in ds.model_fields_set:
        return stored
    skipped = sum(s.get("skipped", 0) for s in row.report.get("splits", {}).values())
    if ds.on_bad_image == "refuse" and skipped:
        raise InvalidRequest(
            f"dataset.on_bad_image: dataset {row.id} holds {skipped} unreadable images, left out "
            "at upload (on_bad_image skip); a job on it must skip them too",
            param="dataset.on_bad_image",
        )
    return ds.on_bad_image


def dataset_for_job(session: Session, ds: DatasetSpec, scope: str | None) -> Dataset:
    """The uploaded dataset a job spec names by ``dataset.id``, visible to ``scope`` (a project;
    None: all); 422 naming the field when it is missing (or another project's), when
    ``dataset.path`` is also given, or when a split or the format does not fit."""
    assert ds.id is not None
    if ds.path is not None:
        raise InvalidRequest("dataset.path: give dataset.id or dataset.path, not both", param="dataset.path")
    row = datasets_repo.get_dataset(session, ds.id, project=scope)
    if row is None:
        raise InvalidRequest(f"dataset.id: no dataset {ds.id}", param="dataset.id")
    if "format" in ds.model_fields_set and ds.format != row.format:
        raise InvalidRequest(
            f"dataset.format: {ds.format!r}, but dataset {ds.id} is {row.format!r}", param="dataset.format"
        )
    for param, split in (("dataset.train_split", ds.train_split), ("dataset.val_split", ds.val_split)):
        if not ({split, *SPLIT_ALIASES.get(split, ())} & set(row.splits)):
            raise InvalidRequest(
                f"{param}: dataset {ds.id} has no split {split!r} (splits: {', '.join(row.splits)})",
                param=param,
            )
    return row


def with_resolved_dataset(spec: JobSpec, session: Session) -> JobSpec:
    """``spec`` with its uploaded dataset (``dataset.id``) named by path as well, for the worker
    to run (unchanged when it has a path). The job's project was checked at submission."""
    ds = spec.dataset
    if ds.id is None or ds.path is not None:
        return spec
    row = datasets_repo.get_dataset(session, ds.id, project=None)
    if row is None:
        raise SpecError(f"dataset.id: no dataset {ds.id}", param="dataset.id")
    return spec.model_copy(update={"dataset": ds.model_copy(update={"path": row.path})})


def delete_dataset(session: Session, dataset_id: str, settings: Settings, scope: str | None) -> None:
    """Remove an uploaded dataset's files and record; 404 when ``scope`` (a project; None: all)
    has none with this id, 409 while unfinished jobs read it."""
    if not datasets_repo.mark_deleting(session, dataset_id, project=scope):
        session.rollback()
        raise NotFound(f"dataset {dataset_id} not found", param="dataset_id")
    users = datasets_repo.jobs_using(session, dataset_id)
    if users:
        session.rollback()
        listed = ", ".join(users[:10]) + (" ..." if len(users) > 10 else "")
        raise DatasetInUse(f"dataset {dataset_id} is read by unfinished jobs: {listed}", param="dataset_id")
    session.commit()
    assert settings.dataset_root is not None
    shutil.rmtree(settings.dataset_root / dataset_id, ignore_errors=True)
    datasets_repo.remove_dataset(session, dataset_id)
    session.commit()
    log.info("dataset %s deleted", dataset_id)
