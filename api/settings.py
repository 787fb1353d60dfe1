"""Infrastructure settings of the service (pydantic-settings), read from the environment.

Only infrastructure lives here (where the database, broker and files are); what a job does is
in its ``JobSpec``. Every path default derives from ``MAR_STATE_DIR``. Tests build their own
``Settings(state_dir=tmp_path, ...)``; ``get_settings()`` caches the environment's instance and
``get_settings.cache_clear()`` resets it.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mar_core.names import POOL_NAME_PATTERN


def _env(*names: str) -> AliasChoices:
    """Accept the environment variable names and the field name (for constructor overrides)."""
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Where the service keeps its state; defaults give the no-server embedded setup."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore", case_sensitive=False)

    state_dir: Path = Field(default=Path("./.mar"), validation_alias=_env("MAR_STATE_DIR", "state_dir"))
    database_url: str | None = Field(default=None, validation_alias=_env("DATABASE_URL", "database_url"))
    broker_url: str = Field(default="filesystem://", validation_alias=_env("BROKER_URL", "broker_url"))
    data_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, validation_alias=_env("MAR_DATA_ROOTS", "data_roots")
    )
    checkpoint_root: Path | None = Field(
        default=None, validation_alias=_env("MAR_CHECKPOINT_ROOT", "checkpoint_root")
    )
    artifact_root: Path | None = Field(
        default=None, validation_alias=_env("MAR_ARTIFACT_ROOT", "artifact_root")
    )
    # uploaded datasets (POST /datasets), one folder each
    dataset_root: Path | None = Field(default=None, validation_alias=_env("MAR_DATASET_ROOT", "dataset_root"))
    lease_seconds: float = Field(
        default=60, gt=0, validation_alias=_env("MAR_LEASE_SECONDS", "lease_seconds")
    )
    heartbeat_seconds: float = Field(
        default=10, gt=0, validation_alias=_env("MAR_HEARTBEAT_SECONDS", "heartbeat_seconds")
    )
    # SIGTERM -> SIGKILL of a job's training process on cancel or worker shutdown; keep it below
    # the orchestrator's own grace period (compose: stop_grace_period 120 s)
    stop_grace_seconds: float = Field(
        default=60, gt=0, validation_alias=_env("MAR_STOP_GRACE_SECONDS", "stop_grace_seconds")
    )
    queue: str = Field(default="mar-gpu", validation_alias=_env("MAR_QUEUE", "queue"))
    # worker pools (a job's resources.pool); the first is the default and uses `queue` itself,
    # each other one the Celery queue "{queue}.{pool}" (pool_queue)
    pools: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["gpu"], validation_alias=_env("MAR_POOLS", "pools")
    )
    # the pool of this worker process (`mar worker --pool`); None: the first pool
    worker_pool: str | None = Field(default=None, validation_alias=_env("MAR_WORKER_POOL", "worker_pool"))
    # a worker is live while its heartbeat row is younger than this (workers table); unset: the
    # lease (worker_stale_after): a worker silent that long would have lost its job's lease too
    worker_stale_seconds: float | None = Field(
        default=None, gt=0, validation_alias=_env("MAR_WORKER_STALE_SECONDS", "worker_stale_seconds")
    )
    # a teacher checkpoint upload (POST /checkpoints): R50/R101 detectors are 150-500 MB
    max_upload_bytes: int = Field(
        default=2 * 1024**3, gt=0, validation_alias=_env("MAR_MAX_UPLOAD_BYTES", "max_upload_bytes")
    )
    # any other request body (a job spec is a few kB): refused before authentication reads it
    max_body_bytes: int = Field(
        default=1024**2, gt=0, validation_alias=_env("MAR_MAX_BODY_BYTES", "max_body_bytes")
    )
    # an uploaded dataset archive: its size, what it may take on disk once extracted (whole blocks,
    # at least one per file and folder: an archive bomb or a million empty files stops there) and
    # its file count. Sized for a service host of a few hundred GB (checkpoints, job folders and
    # the database beside): one upload peaks at 10 + 20 GiB while it is extracted; a COCO-sized
    # dataset (118k images, 19 GB) belongs in a data root (MAR_DATA_ROOTS), not an upload.
    max_dataset_upload_bytes: int = Field(
        default=10 * 1024**3,
        gt=0,
        validation_alias=_env("MAR_MAX_DATASET_UPLOAD_BYTES", "max_dataset_upload_bytes"),
    )
    max_dataset_expanded_bytes: int = Field(
        default=20 * 1024**3,
        gt=0,
        validation_alias=_env("MAR_MAX_DATASET_EXPANDED_BYTES", "max_dataset_expanded_bytes"),
    )
    max_dataset_files: int = Field(
        default=300_000, gt=0, validation_alias=_env("MAR_MAX_DATASET_FILES", "max_dataset_files")
    )
    # torch threads of each training process (unset: torch's default, one per core). The embedded
    # stack (`mar up`) sets cores - 1: beside one other busy process a step then keeps its speed
    # instead of slowing 3.8x (BENCHMARKS.md, "contention"); a dedicated GPU worker leaves it unset.
    training_threads: int | None = Field(
        default=None, ge=1, le=1024, validation_alias=_env("MAR_TRAINING_THREADS", "training_threads")
    )
    # GET /jobs/{id}/metrics: serialised series kept per API process, keyed by the job's metrics
    # revision (0: none; api/metrics_cache.py)
    metrics_cache_bytes: int = Field(
        default=64 * 1024**2, ge=0, validation_alias=_env("MAR_METRICS_CACHE_BYTES", "metrics_cache_bytes")
    )
    # webhooks: hosts a webhook URL may name (empty: any public host; "*.example.com" for a
    # domain), private/loopback/link-local addresses only when allowed (SSRF), how long a
    # delivery is retried, and how often job.progress is sent per job
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("MAR_WEBHOOK_ALLOWED_HOSTS", "webhook_allowed_hosts")
    )
    webhook_allow_private: bool = Field(
        default=False, validation_alias=_env("MAR_WEBHOOK_ALLOW_PRIVATE", "webhook_allow_private")
    )
    webhook_retry_seconds: float = Field(
        default=24 * 3600, gt=0, validation_alias=_env("MAR_WEBHOOK_RETRY_SECONDS", "webhook_retry_seconds")
    )
    webhook_progress_seconds: float = Field(
        default=30, ge=0, validation_alias=_env("MAR_WEBHOOK_PROGRESS_SECONDS", "webhook_progress_seconds")
    )
    # the HTTP server (`mar api`, api/http_server.py): a request's headers must be complete within
    # http_header_timeout_seconds of the connection (or the previous answer), no read of a body may
    # wait longer than http_body_timeout_seconds, an idle keep-alive connection is closed after
    # http_keepalive_seconds, and past http_max_connections connections a request gets a 503
    # (keep it below the process's open-file limit, `ulimit -n`)
    http_header_timeout_seconds: float = Field(
        default=10, gt=0, validation_alias=_env("MAR_HTTP_HEADER_TIMEOUT", "http_header_timeout_seconds")
    )
    http_body_timeout_seconds: float = Field(
        default=30, gt=0, validation_alias=_env("MAR_HTTP_BODY_TIMEOUT", "http_body_timeout_seconds")
    )
    http_keepalive_seconds: int = Field(
        default=5, ge=1, validation_alias=_env("MAR_HTTP_KEEPALIVE", "http_keepalive_seconds")
    )
    http_max_connections: int = Field(
        default=1000, ge=1, validation_alias=_env("MAR_HTTP_MAX_CONNECTIONS", "http_max_connections")
    )
    broker_timeout_seconds: float = Field(
        default=2.0, gt=0, validation_alias=_env("MAR_BROKER_TIMEOUT", "broker_timeout_seconds")
    )
    # GET /metrics/prometheus: open when unset (the Prometheus convention), else this bearer token
    metrics_token: str | None = Field(
        default=None, validation_alias=_env("MAR_METRICS_TOKEN", "metrics_token")
    )
    # the deployment's MLflow tracking server for every job whose spec names none (`tracking` extra)
    mlflow_uri: str | None = Field(default=None, validation_alias=_env("MAR_MLFLOW_URI", "mlflow_uri"))
    # hosts a job's own tracking.mlflow.uri may name (empty: any but loopback / link-local ones)
    mlflow_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("MAR_MLFLOW_ALLOWED_HOSTS", "mlflow_allowed_hosts")
    )
    mlflow_experiment: str = Field(
        default="mar", validation_alias=_env("MAR_MLFLOW_EXPERIMENT", "mlflow_experiment")
    )
    # client side (the CLI and api.sdk)
    api_url: str = Field(default="http://127.0.0.1:8000", validation_alias=_env("MAR_API_URL", "api_url"))
    api_key: str | None = Field(default=None, validation_alias=_env("MAR_API_KEY", "api_key"))

    @field_validator("data_roots", "webhook_allowed_hosts", "mlflow_allowed_hosts", "pools", mode="before")
    @classmethod
    def _split_list(cls, v: Any) -> Any:
        """Accept a JSON list, or items separated by ``os.pathsep`` or commas."""
        if isinstance(v, str):
            text = v.strip()
            if not text:
                return []
            if text.startswith("["):
                return json.loads(text)
            sep = os.pathsep if os.pathsep in text else ","
            return [p.strip() for p in text.split(sep) if p.strip()]
        return v

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        self.state_dir = self.state_dir.expanduser().resolve()
        state = self.state_dir
        if not self.database_url:
            self.database_url = f"sqlite:///{state / 'mar.db'}"
        if not self.data_roots:
            self.data_roots = [state / "data"]
        self.data_roots = [Path(p).expanduser().resolve() for p in self.data_roots]
        self.checkpoint_root = (self.checkpoint_root or state / "checkpoints").expanduser().resolve()
        self.artifact_root = (self.artifact_root or state / "jobs").expanduser().resolve()
        self.dataset_root = (self.dataset_root or state / "datasets").expanduser().resolve()
        bad = [p for p in self.pools if not re.fullmatch(POOL_NAME_PATTERN, p)]
        if not self.pools or bad or len(set(self.pools)) != len(self.pools):
            raise ValueError(
                f"MAR_POOLS: one or more distinct names matching {POOL_NAME_PATTERN} (got {self.pools})"
            )
        if self.worker_pool is not None and self.worker_pool not in self.pools:
            raise ValueError(f"MAR_WORKER_POOL: {self.worker_pool!r} is not one of MAR_POOLS {self.pools}")
        return self

    @property
    def worker_stale_after(self) -> float:
        """Seconds after its last heartbeat row a worker no longer counts as live."""
        return self.worker_stale_seconds or self.lease_seconds

    @property
    def default_pool(self) -> str:
        """The pool of a job that names none."""
        return self.pools[0]

    @property
    def my_pool(self) -> str:
        """This worker process's pool."""
        return self.worker_pool or self.default_pool

    def pool_queue(self, pool: str | None) -> str:
        """The Celery queue of ``pool`` (None: the default pool): ``queue`` for the default pool,
        ``{queue}.{pool}`` for the others."""
        pool = pool or self.default_pool
        return self.queue if pool == self.default_pool else f"{self.queue}.{pool}"

    @property
    def dataset_read_roots(self) -> list[Path]:
        """Where a job may read a dataset: the data roots (relative paths resolve against the
        first), uploaded datasets, previous jobs' outputs."""
        assert self.dataset_root is not None and self.artifact_root is not None
        return [*self.data_roots, self.dataset_root, self.artifact_root]

    @property
    def checkpoint_read_roots(self) -> list[Path]:
        """Where a job may read a teacher or a pretrained start: uploads and previous jobs' outputs."""
        assert self.checkpoint_root is not None and self.artifact_root is not None
        return [self.checkpoint_root, self.artifact_root]

    def path_names(self) -> dict[str, list[Path]]:
        """What messages to clients show instead of each configured folder (``redact_paths``)."""
        assert self.checkpoint_root and self.artifact_root and self.dataset_root
        return {
            "<data root>": self.data_roots,
            "<uploaded datasets>": [self.dataset_root],
            "<checkpoint root>": [self.checkpoint_root],
            "<job artifacts>": [self.artifact_root],
            "<state dir>": [self.state_dir],
        }

    @property
    def broker_dir(self) -> Path:
        """Folder of the ``filesystem://`` transport."""
        return self.state_dir / "broker"

    def job_dir(self, job_id: str) -> Path:
        """The work directory (and artifacts folder) of one job."""
        assert self.artifact_root is not None
        return self.artifact_root / job_id

    def ensure_dirs(self) -> None:
        """Create the state, checkpoint and artifact folders (data roots are the user's)."""
        for d in (self.state_dir, self.checkpoint_root, self.artifact_root, self.dataset_root):
            assert d is not None
            d.mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The environment's settings, built once; ``get_settings.cache_clear()`` to re-read."""
    return Settings()
