"""Response schemas (the request body of ``POST /jobs`` is ``mar_core.spec.JobSpec``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mar_core import names
from mar_core.names import WEBHOOK_EVENTS
from mar_core.url_guard import URL_PATTERN

# The ids and values of the query, path and header parameters, as the OpenAPI document states them.
INT64_MAX = 2**63 - 1
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"  # a file's sha256, lowercase hex (uploads are named by it)
EVENT_ID_PATTERN = r"^[0-9]{0,18}$"  # empty: from the start
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]{1,255}$"  # printable ASCII, no space
# a webhook event name, as the document states it (the route names an unknown one)
WebhookEvent = Annotated[str, Field(json_schema_extra={"enum": list(WEBHOOK_EVENTS)})]


class ErrorItem(BaseModel):
    code: str = Field(description="machine-readable error code, e.g. invalid_spec")
    message: str
    param: str | None = Field(description="dotted spec field, query parameter or header at fault")
    loc: list[str | int] = Field(default_factory=list)
    msg: str


class ErrorPublic(BaseModel):
    """The body of every 4xx/5xx answer."""

    detail: list[ErrorItem]


class JobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str | None
    kind: str
    status: str
    phase: str | None
    attempt: int
    max_attempts: int
    worker_id: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    error: dict[str, Any] | None = Field(description="{code, message, param} when the job failed")
    progress_step: int | None
    progress_total: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    spec: dict[str, Any]
    pool: str | None = Field(default=None, description="the worker pool it waits for or runs in")
    priority: str = Field(default="normal", description="low | normal | high")
    waiting: str | None = Field(
        default=None,
        description="why a queued job cannot start now (no live worker in its pool); null otherwise",
    )

    @field_validator("priority", mode="before")
    @classmethod
    def _priority_name(cls, v: Any) -> Any:
        return names.PRIORITIES[v] if isinstance(v, int) else v


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


class MetricPoint(BaseModel):
    step: int
    value: float
    time: datetime


class MetricSeries(BaseModel):
    """``format=points`` (the default)."""

    job_id: str
    series: dict[str, list[MetricPoint]]


class MetricColumn(BaseModel):
    step: list[int]
    value: list[float]


class MetricColumns(BaseModel):
    """``format=columns``: each series as two equal-length arrays."""

    job_id: str
    series: dict[str, MetricColumn]


class StreamEvent(BaseModel):
    """A frame of ``GET /jobs/{id}/events/stream``: a stored event, or (``id`` null) the job's
    live progress, which is not stored."""

    model_config = ConfigDict(from_attributes=True)

    id: int | None
    job_id: str
    type: str
    data: dict[str, Any]
    created_at: datetime


class EventPublic(StreamEvent):
    id: int


class ArtifactPublic(BaseModel):
    name: str
    size: int
    sha256: str
    created_at: datetime
    url: str


class JobCheckpointPublic(BaseModel):
    name: str = Field(description="last (resume point) or best (best-AP weights)")
    step: int | None = Field(description="the training step it holds")
    AP: float | None = Field(description="the evaluation AP at that step, when evaluated")
    size: int
    modified_at: datetime
    url: str = Field(description="download (sha256 of the file as sent in X-Checksum-Sha256)")


class JobCheckpointsPublic(BaseModel):
    last: JobCheckpointPublic | None
    best: JobCheckpointPublic | None


class CheckpointPublic(BaseModel):
    id: str = Field(description='use as {"teacher": {"upload": ...}} in a job spec')
    path: str = Field(description="relative to the checkpoint root: teacher.checkpoint's older form")
    name: str
    size: int
    sha256: str


class HealthPublic(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


class DatasetPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description='use as {"dataset": {"id": ...}} in a job spec')
    name: str
    format: str
    splits: list[str]
    report: dict[str, Any] = Field(
        description="per split: images, boxes, boxes per class, small/medium/large, repaired boxes; warnings"
    )
    files: int
    expanded_size: int
    archive_size: int
    archive_sha256: str
    created_at: datetime


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    count: int
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


class JobCreated(JobPublic):
    webhook_secret: str | None = Field(
        default=None,
        description="signs this job's spec webhooks (Standard Webhooks); returned only when the job is created",
    )


class WebhookEndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=2048,
        pattern=URL_PATTERN,
        description="an http(s) URL whose host resolves to public addresses (mar_core.url_guard)",
    )
    events: list[WebhookEvent] | None = Field(
        default=None, min_length=1, max_length=len(WEBHOOK_EVENTS), description="default: every event"
    )


class WebhookEndpointPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    url: str
    events: list[str]
    created_at: datetime


class WebhookEndpointCreated(WebhookEndpointPublic):
    secret: str = Field(description="verifies the signatures (whsec_...); shown only now")


class WebhookAttempt(BaseModel):
    at: datetime
    status_code: int | None
    error: str | None
    duration_s: float


class WebhookDeliveryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="the webhook-id header")
    endpoint_id: str | None = Field(description="null: a webhook of the job spec")
    url: str
    event_type: str
    status: str = Field(description="pending, delivered or failed")
    attempts: list[WebhookAttempt]
    next_attempt_at: datetime | None
    created_at: datetime
    payload: dict[str, Any]


class QuotaIn(BaseModel):
    """A project's limits (null: none); fields left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    max_running: int | None = Field(default=None, ge=0, le=100_000)
    max_queued: int | None = Field(default=None, ge=0, le=1_000_000)
    gpu_hours_per_day: float | None = Field(default=None, ge=0, le=1_000_000)


class QuotaUsage(BaseModel):
    queued: int
    running: int
    gpu_hours_per_day: float = Field(description="GPU-hours over the last 24 hours, running jobs up to now")


class QuotaPublic(BaseModel):
    project: str
    max_running: int | None
    max_queued: int | None
    gpu_hours_per_day: float | None
    usage: QuotaUsage


class QueuedJobPublic(BaseModel):
    id: str
    project: str
    priority: str
    position: int = Field(description="1: the next job of the pool to start")
    eta_seconds: float | None = Field(
        description="seconds until it should start, from the pool's measured step rate"
    )
    held: str | None = Field(description="why it is skipped for now (its project's max_running quota)")


class PoolQueuePublic(BaseModel):
    pool: str
    workers: int = Field(description="job slots of the pool's live workers")
    running: int
    waiting: int
    seconds_per_step: float | None
    jobs: list[QueuedJobPublic] = Field(description="the waiting jobs your key sees, in order")
    note: str | None


class QueuePublic(BaseModel):
    pools: list[PoolQueuePublic]
