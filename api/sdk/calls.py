"""The API's requests, defined once for both clients: each function returns a ``Call`` (method,
path, query, body, headers, and how to read the answer into the API's schema)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from api.schemas import (
    ArtifactPublic,
    CheckpointPublic,
    DatasetPublic,
    DatasetsPublic,
    EventPublic,
    HealthPublic,
    JobCheckpointsPublic,
    JobCreated,
    JobPublic,
    JobsPublic,
    MetricSeries,
    QueuePublic,
    QuotaPublic,
)
from mar_core.spec import JobSpec

__all__ = ["Call", "file_sha256", "same_dataset_options"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the reader of its (2xx) answer."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda resp: model.model_validate(resp.json())


def _nothing(resp: httpx.Response) -> None:
    return None


_EVENTS = TypeAdapter(list[EventPublic])
_ARTIFACTS = TypeAdapter(list[ArtifactPublic])


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes (what content-addressed uploads are keyed by)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def same_dataset_options(row: DatasetPublic, fmt: str | None, on_bad_image: str | None) -> bool:
    """Whether a stored upload of the same archive was read with these options."""
    same_policy = row.report.get("on_bad_image", "refuse") == (on_bad_image or "refuse")
    return same_policy and fmt in (None, row.format)


def spec_body(spec: JobSpec | Mapping[str, Any]) -> dict[str, Any]:
    """A spec as JSON: a ``JobSpec`` with the fields it was given, a mapping as it is."""
    if isinstance(spec, JobSpec):
        return spec.model_dump(mode="json", exclude_unset=True)
    return dict(spec)


def submit(spec: JobSpec | Mapping[str, Any], idempotency_key: str | None) -> Call[JobCreated]:
    """``POST /jobs`` with an idempotency key (a new one unless given): retries replay the job."""
    key = idempotency_key or uuid.uuid4().hex
    return Call("POST", "/jobs", _model(JobCreated), json=spec_body(spec), headers={"Idempotency-Key": key})


def get_job(job_id: str) -> Call[JobPublic]:
    return Call("GET", f"/jobs/{job_id}", _model(JobPublic))


def list_jobs(status: str | None, limit: int, cursor: str | None) -> Call[JobsPublic]:
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    if cursor:
        params["cursor"] = cursor
    return Call("GET", "/jobs", _model(JobsPublic), params=params)


def job_action(job_id: str, action: str) -> Call[JobPublic]:
    """``POST /jobs/{id}/{action}``: ``cancel``, ``pause`` or ``resume``."""
    return Call("POST", f"/jobs/{job_id}/{action}", _model(JobPublic))


def delete_job(job_id: str) -> Call[None]:
    return Call("DELETE", f"/jobs/{job_id}", _nothing)


def job_checkpoints(job_id: str) -> Call[JobCheckpointsPublic]:
    return Call("GET", f"/jobs/{job_id}/checkpoints", _model(JobCheckpointsPublic))


def metrics(job_id: str, names: list[str] | None, since: int | None) -> Call[MetricSeries]:
    params: dict[str, Any] = {}
    if names:
        params["names"] = ",".join(names)
    if since is not None:
        params["since"] = since
    return Call("GET", f"/jobs/{job_id}/metrics", _model(MetricSeries), params=params)


def events(job_id: str, after: int | None) -> Call[list[EventPublic]]:
    params = {"after": after} if after is not None else None
    return Call("GET", f"/jobs/{job_id}/events", lambda r: _EVENTS.validate_python(r.json()), params=params)


def artifacts(job_id: str) -> Call[list[ArtifactPublic]]:
    return Call("GET", f"/jobs/{job_id}/artifacts", lambda r: _ARTIFACTS.validate_python(r.json()))


def checkpoint_by_sha256(digest: str) -> Call[CheckpointPublic]:
    return Call("GET", f"/checkpoints/{digest}", _model(CheckpointPublic))


def datasets(limit: int, cursor: str | None = None, sha256: str | None = None) -> Call[DatasetsPublic]:
    params: dict[str, Any] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    if sha256:
        params["sha256"] = sha256
    return Call("GET", "/datasets", _model(DatasetsPublic), params=params)


def get_dataset(dataset_id: str) -> Call[DatasetPublic]:
    return Call("GET", f"/datasets/{dataset_id}", _model(DatasetPublic))


def delete_dataset(dataset_id: str) -> Call[None]:
    return Call("DELETE", f"/datasets/{dataset_id}", _nothing)


def queue() -> Call[QueuePublic]:
    return Call("GET", "/queue", _model(QueuePublic))


def get_quota(project: str) -> Call[QuotaPublic]:
    return Call("GET", f"/projects/{project}/quota", _model(QuotaPublic))


def set_quota(project: str, limits: Mapping[str, int | float | None]) -> Call[QuotaPublic]:
    """``PUT /projects/{project}/quota`` with the limits given (None: no limit)."""
    return Call("PUT", f"/projects/{project}/quota", _model(QuotaPublic), json=dict(limits))


def health() -> Call[HealthPublic]:
    return Call("GET", "/healthz", _model(HealthPublic))


def ready() -> Call[HealthPublic]:
    return Call("GET", "/readyz", _model(HealthPublic))


def dataset_form(name: str | None, fmt: str | None, on_bad_image: str | None) -> dict[str, str]:
    """The form fields of ``POST /datasets`` that are set."""
    fields = (("name", name), ("format", fmt), ("on_bad_image", on_bad_image))
    return {k: v for k, v in fields if v}
