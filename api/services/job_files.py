"""A job's files seen by the lifecycle routes: its training checkpoints (described, and opened
for a download that stays consistent while the run rewrites them) and their removal on delete."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import BinaryIO

from sqlalchemy.orm import Session

from api.db import events_repo, metrics_repo
from api.settings import Settings
from mar_core.checkpoint_files import checkpoint_path
from mar_core.errors import PathOutsideRootError
from mar_core.paths import resolve_under

log = logging.getLogger(__name__)

CHECKPOINTS = ("last", "best")
AP_METRIC = "eval/AP"  # the series EvalHook writes
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class CheckpointInfo:
    name: str
    step: int | None
    AP: float | None
    size: int
    modified_at: datetime


def describe_checkpoints(
    session: Session, settings: Settings, job_id: str
) -> dict[str, CheckpointInfo | None]:
    """``last`` and ``best`` (None while the file does not exist): the step of ``last`` is that
    of the latest ``checkpoint`` event, the step of ``best`` that of the highest ``eval/AP``."""
    out: dict[str, CheckpointInfo | None] = dict.fromkeys(CHECKPOINTS)
    for name in CHECKPOINTS:
        try:
            st = checkpoint_path(settings.job_dir(job_id), name).stat()
        except OSError:
            continue
        if name == "last":
            ev = events_repo.last_event(session, job_id, "checkpoint")
            step = ev.data.get("step") if ev is not None else None
            ap = metrics_repo.metric_value(session, job_id, AP_METRIC, step) if step is not None else None
        else:
            best = metrics_repo.best_metric(session, job_id, AP_METRIC)
            step, ap = best if best is not None else (None, None)
        modified = datetime.fromtimestamp(st.st_mtime, timezone.utc)
        out[name] = CheckpointInfo(name, step, ap, st.st_size, modified)
    return out


def open_checkpoint(settings: Settings, job_id: str, name: str) -> tuple[BinaryIO, int, str] | None:
    """``(open file, size, sha256)`` of one checkpoint, or None when it does not exist.

    The run replaces the file atomically (a new inode), so the open file stays the one hashed:
    the digest always matches the bytes sent, however often the run checkpoints meanwhile."""
    try:
        f = open(checkpoint_path(settings.job_dir(job_id), name), "rb")  # closed by stream_file
    except OSError:
        return None
    h = hashlib.sha256()
    while chunk := f.read(_CHUNK):
        h.update(chunk)
    size = os.fstat(f.fileno()).st_size
    f.seek(0)
    return f, size, h.hexdigest()


def stream_file(f: BinaryIO) -> Iterator[bytes]:
    """The file's bytes in 1 MiB chunks; closes it at the end (or when the client goes away)."""
    try:
        while chunk := f.read(_CHUNK):
            yield chunk
    finally:
        f.close()


def remove_job_files(settings: Settings, job_id: str, artifact_paths: list[str]) -> None:
    """Delete a job's work folder and any recorded artifact under the artifact root outside it."""
    assert settings.artifact_root is not None
    for raw in artifact_paths:
        try:
            path = resolve_under(raw, [settings.artifact_root], "artifact")
        except PathOutsideRootError:
            log.warning("job %s: artifact %s lies outside the artifact root; left alone", job_id, raw)
            continue
        if path.is_file():
            path.unlink()
    shutil.rmtree(settings.job_dir(job_id), ignore_errors=True)
    log.info("job %s: files removed", job_id)
