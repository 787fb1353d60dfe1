"""The teacher a spec names by id (``teacher.job``, ``teacher.upload``) as a folder or file of
the service: checked at submission for the submitting project, resolved again by the worker
when it runs the job (the stored spec keeps the id: no server path in it). Errors name the field
and the id, never a path."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from api.db import jobs_repo, states
from api.db.models import DEFAULT_PROJECT
from api.services.uploads import UPLOADS, upload_in
from api.settings import Settings
from mar_core.errors import SpecError
from mar_core.spec import JobSpec, TeacherSpec


def _job_teacher(job_id: str, settings: Settings, session: Session, project: str | None) -> Path:
    job = jobs_repo.get_job(session, job_id, project=project)
    if job is None:
        raise SpecError(f"teacher.job: no job {job_id}", param="teacher.job")
    if job.status != states.SUCCEEDED:
        raise SpecError(
            f"teacher.job: job {job_id} is {job.status}; a teacher is a job that succeeded",
            param="teacher.job",
        )
    folder = settings.job_dir(job.id)
    if not (folder / "model.json").is_file():
        raise SpecError(f"teacher.job: job {job_id} left no model", param="teacher.job")
    return folder


def _upload_teacher(upload_id: str, settings: Settings, project: str | None) -> Path:
    assert settings.checkpoint_root is not None
    uploads = settings.checkpoint_root / UPLOADS
    if project is None:  # an admin key, or the worker (visibility was checked at submission)
        folders = [uploads, *(p for p in uploads.iterdir() if p.is_dir())] if uploads.is_dir() else []
    else:  # a project's own folder; uploads from before projects belong to the default project
        folders = [uploads / project, *([uploads] if project == DEFAULT_PROJECT else [])]
    for folder in folders:
        if (path := upload_in(folder, upload_id)) is not None:
            return path
    raise SpecError(f"teacher.upload: no upload {upload_id}", param="teacher.upload")


def teacher_path(teacher: TeacherSpec, settings: Settings, session: Session, project: str | None) -> Path:
    """The folder of ``teacher.job`` or the file of ``teacher.upload``, as ``project`` sees them
    (None: every project's); ``SpecError`` naming the field when there is none."""
    if teacher.job is not None:
        return _job_teacher(teacher.job, settings, session, project)
    assert teacher.upload is not None
    return _upload_teacher(teacher.upload, settings, project)


def with_resolved_teacher(spec: JobSpec, settings: Settings, session: Session) -> JobSpec:
    """``spec`` with its teacher named by path, for the worker to run (unchanged when it is
    already a path, or when there is no teacher)."""
    if spec.teacher is None or spec.teacher.checkpoint is not None:
        return spec
    path = teacher_path(spec.teacher, settings, session, None)
    return spec.model_copy(update={"teacher": spec.teacher.with_checkpoint(str(path))})
