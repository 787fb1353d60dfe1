"""SQLAlchemy 2.0 typed ORM models: jobs, their events, metrics and artifacts, datasets, API keys.

Timestamps are timezone-aware UTC in Python on every dialect (``UTCDateTime``). The schema is
created by the Alembic migration in ``api/migrations`` (never ``create_all`` outside tests of
the migration itself).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from api.db import states

# Integer for SQLite (so the column aliases the rowid), BIGINT elsewhere.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


DEFAULT_PROJECT = "default"  # where keys, jobs and datasets from before projects live


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def new_id() -> str:
    """A new job id: uuid4 as 32 hex characters."""
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC; always read back timezone-aware.

    SQLite keeps no offset, so values are stored there as naive UTC; PostgreSQL uses
    ``timestamp with time zone``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
        list[Any]: JSON(),
    }


class Job(Base):
    """One training or distillation job: the record of truth for its state."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_created_at_id", "created_at", "id"),
        Index("ix_jobs_project_created_at_id", "project", "created_at", "id"),
        Index("ix_jobs_idempotency_scope", "idempotency_scope", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True, default=states.QUEUED)
    phase: Mapped[str | None] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    project: Mapped[str] = mapped_column(String(64), default=DEFAULT_PROJECT)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)  # before 0004 only
    idempotency_scope: Mapped[str | None] = mapped_column(String(64))  # see jobs_repo
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    progress_step: Mapped[int | None] = mapped_column(Integer)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    dataset_id: Mapped[str | None] = mapped_column(String(32), index=True)  # an uploaded dataset it reads
    webhook_secret: Mapped[str | None] = mapped_column(String(64))  # signs the spec's webhooks
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # DELETE: files gone, row hidden
    metrics_rev: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # metric writes
    # scheduling (api/db/scheduling.py): the worker pool (None: the deployment's first pool), the
    # priority rank (names.PRIORITIES: 0 low, 1 normal, 2 high) and, while a higher-priority job
    # waits for this one's worker, that job's id (the pause it asked for resumes by itself)
    pool: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    preempted_by: Mapped[str | None] = mapped_column(String(32))

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, status={self.status!r}, attempt={self.attempt})"


class Dataset(Base):
    """An uploaded, validated dataset in its own folder under the dataset root.

    ``status`` is ``ready``, or ``deleting`` while ``DELETE`` removes it (a job submitted then
    is refused); ``report`` is the validation summary (splits, counts, warnings)."""

    __tablename__ = "datasets"
    __table_args__ = (Index("ix_datasets_created_at_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    project: Mapped[str] = mapped_column(String(64), index=True, default=DEFAULT_PROJECT)
    format: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="ready")
    path: Mapped[str] = mapped_column(String(4096))
    splits: Mapped[list[str]] = mapped_column(JSON)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    archive_size: Mapped[int] = mapped_column(BigInteger)
    archive_sha256: Mapped[str] = mapped_column(String(64))
    files: Mapped[int] = mapped_column(Integer)
    expanded_size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Event(Base):
    """Something that happened to a job; ``id`` is the SSE event id (increasing)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_job_id_id", "job_id", "id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Metric(Base):
    """One value of one named series at one step; a resumed run overwrites, never duplicates."""

    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("job_id", "name", "step"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    time: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Artifact(Base):
    """A file a job produced (weights, checkpoints, report) with its size and sha256."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("job_id", "name"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(4096))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Project(Base):
    """A tenant: its keys see and act on its own jobs, datasets and uploads only."""

    __tablename__ = "projects"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKey(Base):
    """An API key, stored as the sha256 hex of the key; ``prefix`` identifies it in listings.
    It acts within its ``project``; an ``admin`` key sees and acts on every project."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: uuid.uuid4().hex[:12])
    name: Mapped[str] = mapped_column(String(200))
    project: Mapped[str] = mapped_column(String(64), default=DEFAULT_PROJECT)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    high_priority: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="0"
    )  # may submit "high"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookEndpoint(Base):
    """A URL told of every job of a project (``events``: which), signed with its own secret."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(Base):
    """One event for one URL (the outbox): written in the transaction of the state change it
    reports, sent by the delivery loop, retried with back-off; ``attempts`` records each try
    ``{"at", "status_code", "error", "duration_s"}``. ``id`` is the ``webhook-id``."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    endpoint_id: Mapped[str | None] = mapped_column(String(32))  # None: the job spec's own webhook
    url: Mapped[str] = mapped_column(String(2048))
    event_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # pending, delivered, failed
    attempts: Mapped[list[Any]] = mapped_column(JSON)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ProjectQuota(Base):
    """An admin's limits for one project; None: no limit. ``max_running`` holds jobs in the queue,
    ``max_queued`` and ``gpu_hours_per_day`` (a rolling 24 h of run segments) refuse submits."""

    __tablename__ = "project_quotas"

    project: Mapped[str] = mapped_column(String(64), primary_key=True)
    max_running: Mapped[int | None] = mapped_column(Integer)
    max_queued: Mapped[int | None] = mapped_column(Integer)
    gpu_hours_per_day: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RunSegment(Base):
    """One stretch of a job on a worker: opened at its claim, closed when the run ends (finished,
    paused, released or lease lost; ``ended_at`` None while it runs). Quotas and fair share count
    ``gpus`` x its seconds; its steps give the pool's measured step rate (queue ETAs)."""

    __tablename__ = "run_segments"
    __table_args__ = (Index("ix_run_segments_project_ended_at", "project", "ended_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    project: Mapped[str] = mapped_column(String(64))
    pool: Mapped[str | None] = mapped_column(String(64))
    gpus: Mapped[int] = mapped_column(Integer, default=1)
    start_step: Mapped[int] = mapped_column(Integer, default=0)  # the job's progress at the claim
    end_step: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WorkerBeat(Base):
    """A live worker process of a pool: written by the worker every heartbeat, removed at its
    stop; one whose ``last_seen`` is older than a few heartbeats is gone."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # the worker id (leases' owner)
    pool: Mapped[str] = mapped_column(String(64), index=True)
    slots: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
