"""Repository functions over uploaded datasets.

Deleting races with submitting a job that reads the dataset; both touch the dataset row with a
conditional ``UPDATE`` in their transaction (a row lock on PostgreSQL, the write lock on SQLite),
so one of them sees the other's committed result: a submit ``claim_for_job`` fails once
``mark_deleting`` committed, and ``mark_deleting`` finds the job once the submit committed.
"""

from __future__ import annotations

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from api.db import states
from api.db.models import Dataset, Job
from api.db.paging import newest_first_page

READY, DELETING = "ready", "deleting"


def add_dataset(s: Session, dataset: Dataset) -> Dataset:
    """Insert a ready dataset (flushed, not committed)."""
    dataset.status = READY
    s.add(dataset)
    s.flush()
    return dataset


def _ready(project: str | None) -> Select[tuple[Dataset]]:
    stmt = select(Dataset).where(Dataset.status == READY)
    return stmt if project is None else stmt.where(Dataset.project == project)


def get_dataset(s: Session, dataset_id: str, project: str | None = None) -> Dataset | None:
    """A ready dataset with this id (of ``project``, when given), or None (one being deleted is
    gone already)."""
    return s.execute(_ready(project).where(Dataset.id == dataset_id)).scalar_one_or_none()


def list_datasets(
    s: Session,
    limit: int = 50,
    cursor: str | None = None,
    project: str | None = None,
    archive_sha256: str | None = None,
) -> tuple[list[Dataset], str | None]:
    """Ready datasets (of ``project``, when given; uploaded as an archive of this sha256, when
    given), newest first; ``(datasets, next_cursor)``."""
    stmt = _ready(project)
    if archive_sha256 is not None:
        stmt = stmt.where(Dataset.archive_sha256 == archive_sha256)
    return newest_first_page(s, stmt, Dataset, limit, cursor)


def find_upload(
    s: Session, project: str, archive_sha256: str, fmt: str | None, on_bad_image: str
) -> Dataset | None:
    """The project's ready dataset uploaded from the same archive bytes with the same options
    (``fmt`` None: any detected format), or None: an identical re-upload returns it."""
    rows = s.execute(
        _ready(project).where(Dataset.archive_sha256 == archive_sha256).order_by(Dataset.created_at)
    ).scalars()
    for row in rows:
        if (fmt is None or row.format == fmt) and row.report.get("on_bad_image", "refuse") == on_bad_image:
            return row
    return None


def claim_for_job(s: Session, dataset_id: str) -> bool:
    """Lock the dataset row for a job being submitted; False when it is gone or being deleted."""
    stmt = (
        update(Dataset)
        .where(Dataset.id == dataset_id, Dataset.status == READY)
        .values(status=READY)
        .execution_options(synchronize_session=False)
    )
    return s.execute(stmt).rowcount == 1


def jobs_using(s: Session, dataset_id: str) -> list[str]:
    """Ids of the unfinished (queued, active or paused) jobs that read the dataset."""
    unfinished = sorted(str(v) for v in states.UNFINISHED)
    stmt = select(Job.id).where(Job.dataset_id == dataset_id, Job.status.in_(unfinished)).order_by(Job.id)
    return list(s.execute(stmt).scalars())


def mark_deleting(s: Session, dataset_id: str, project: str | None = None) -> bool:
    """ready -> deleting; False when there is no ready dataset with this id (of ``project``)."""
    owned = () if project is None else (Dataset.project == project,)
    stmt = (
        update(Dataset)
        .where(Dataset.id == dataset_id, Dataset.status == READY, *owned)
        .values(status=DELETING)
        .execution_options(synchronize_session=False)
    )
    return s.execute(stmt).rowcount == 1


def remove_dataset(s: Session, dataset_id: str) -> None:
    """Delete the row (after its files are gone)."""
    row = s.get(Dataset, dataset_id)
    if row is not None:
        s.delete(row)
