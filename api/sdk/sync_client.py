"""``MarClient``: the synchronous typed client (httpx). Used by the ``mar`` CLI and the demo."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self, TypeVar

import httpx
from tqdm.utils import CallbackIOWrapper

from api.db import states
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
    StreamEvent,
)
from api.sdk import calls
from api.sdk.errors import ApiClientError, error_from
from api.sdk.retry import RetryPolicy
from api.sdk.sse import parse_sse
from mar_core.atomic import atomic_path
from mar_core.spec import JobSpec

__all__ = ["DEFAULT_URL", "MarClient"]

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000"
T = TypeVar("T")


def base_settings(base_url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    """The API's URL and the auth header: the arguments, else ``MAR_API_URL`` / ``MAR_API_KEY``."""
    url = (base_url or os.environ.get("MAR_API_URL") or DEFAULT_URL).rstrip("/")
    key = api_key or os.environ.get("MAR_API_KEY")
    return url, ({"Authorization": f"Bearer {key}"} if key else {})


class MarClient:
    """Every endpoint, typed; connection errors, 429 and 503 retried (``retry``)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
    ):
        self.base_url, headers = base_settings(base_url, api_key)
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def _once(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise ApiClientError(f"cannot reach the API at {self.base_url}: {e}") from None
        if resp.status_code >= 400:
            raise error_from(resp)
        return resp

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, tried again by the retry policy."""
        for attempt in self.retry.sync():
            with attempt:
                return self._once(method, path, **kwargs)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _send(self, call: calls.Call[T]) -> T:
        resp = self._request(call.method, call.path, params=call.params, json=call.json, headers=call.headers)
        return call.read(resp)

    # ------------------------------------------------------------------ jobs

    def submit(self, spec: JobSpec | Mapping[str, Any], idempotency_key: str | None = None) -> JobCreated:
        """``POST /jobs``; returns the job (also on an idempotent replay). A key is made when none
        is given, so a retried submit never creates a second job."""
        return self._send(calls.submit(spec, idempotency_key))

    def get_job(self, job_id: str) -> JobPublic:
        return self._send(calls.get_job(job_id))

    def list_jobs(self, status: str | None = None, limit: int = 50, cursor: str | None = None) -> JobsPublic:
        return self._send(calls.list_jobs(status, limit, cursor))

    def iter_jobs(self, status: str | None = None, page_size: int = 100) -> Iterator[JobPublic]:
        """Every job, newest first, following the cursors."""
        cursor = None
        while True:
            page = self.list_jobs(status=status, limit=page_size, cursor=cursor)
            yield from page.data
            cursor = page.next_cursor
            if not cursor:
                return

    def cancel(self, job_id: str) -> JobPublic:
        return self._send(calls.job_action(job_id, "cancel"))

    def pause(self, job_id: str) -> JobPublic:
        """The job, ``paused`` (was queued) or ``pausing``."""
        return self._send(calls.job_action(job_id, "pause"))

    def resume(self, job_id: str) -> JobPublic:
        """The paused job, queued again."""
        return self._send(calls.job_action(job_id, "resume"))

    def delete_job(self, job_id: str) -> None:
        """A finished job's files removed, the job hidden."""
        self._send(calls.delete_job(job_id))

    def checkpoints(self, job_id: str) -> JobCheckpointsPublic:
        return self._send(calls.job_checkpoints(job_id))

    def metrics(self, job_id: str, names: list[str] | None = None, since: int | None = None) -> MetricSeries:
        return self._send(calls.metrics(job_id, names, since))

    def events(self, job_id: str, after: int | None = None) -> list[EventPublic]:
        return self._send(calls.events(job_id, after))

    def stream_events(
        self, job_id: str, after: int | None = None, max_reconnects: int = 20
    ) -> Iterator[StreamEvent]:
        """Follow ``/events/stream`` until the job is finished (``id`` None: live progress, not
        stored); reconnects with ``Last-Event-ID``."""
        last = after
        failures = 0
        while True:
            headers = {"Last-Event-ID": str(last)} if last is not None else {}
            try:
                with self._http.stream(
                    "GET",
                    f"/jobs/{job_id}/events/stream",
                    headers=headers,
                    timeout=httpx.Timeout(30.0, read=None),
                ) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        raise error_from(resp)
                    for frame in parse_sse(resp.iter_lines()):
                        if isinstance(frame.get("data"), dict):
                            event = StreamEvent.model_validate(frame["data"])
                            if event.id is not None:
                                last = event.id
                            failures = 0
                            yield event
                return  # the server ends the stream once the job is terminal
            except httpx.TransportError as e:
                failures += 1
                if failures > max_reconnects:
                    raise ApiClientError(f"event stream of job {job_id} lost: {e}") from None
                log.warning("event stream interrupted (%s); resuming after event %s", e, last)
                time.sleep(min(5.0, 0.5 * failures))

    def wait(
        self,
        job_id: str,
        on_event: Callable[[StreamEvent], object] | None = None,
        timeout: float | None = None,
        poll_seconds: float = 2.0,
    ) -> JobPublic:
        """The job once it is finished. With ``on_event``, follows the event stream and calls it
        with each event; else polls. ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def check_time() -> None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not finished after {timeout} s")

        if on_event is not None:
            for event in self.stream_events(job_id):
                on_event(event)
                check_time()
            return self.get_job(job_id)
        while True:
            job = self.get_job(job_id)
            if job.status in states.TERMINAL:
                return job
            check_time()
            time.sleep(poll_seconds)

    # ------------------------------------------------------------------ files

    def artifacts(self, job_id: str) -> list[ArtifactPublic]:
        return self._send(calls.artifacts(job_id))

    def download(self, job_id: str, name: str, out_dir: str | Path = ".") -> Path:
        """Stream one artifact to ``out_dir/<basename>``, verifying ``X-Checksum-Sha256``."""
        return self._fetch(f"/jobs/{job_id}/artifacts/{name}", Path(out_dir) / Path(name).name)

    def download_checkpoint(self, job_id: str, which: str, out: str | Path) -> Path:
        """Stream the ``last`` or ``best`` checkpoint (also mid-run) to ``out``, verifying sha256."""
        return self._fetch(f"/jobs/{job_id}/checkpoints/{which}", Path(out))

    def _fetch(self, url: str, out: Path) -> Path:
        for attempt in self.retry.sync():
            with attempt:
                self._fetch_once(url, out)
        return out

    def _fetch_once(self, url: str, out: Path) -> None:
        """Stream ``url`` to ``out`` (atomically), verifying ``X-Checksum-Sha256``."""
        h = hashlib.sha256()
        try:
            with atomic_path(out, ".part") as tmp:
                with self._http.stream("GET", url) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        raise error_from(resp)
                    expected = resp.headers.get("X-Checksum-Sha256")
                    with open(tmp, "wb") as f:
                        for chunk in resp.iter_bytes(1024 * 1024):
                            h.update(chunk)
                            f.write(chunk)
                if expected and h.hexdigest() != expected:
                    raise ApiClientError(
                        f"{out.name}: sha256 mismatch (got {h.hexdigest()}, expected {expected})",
                        code="checksum_mismatch",
                    )
        except httpx.TransportError as e:
            raise ApiClientError(f"download of {out.name} failed: {e}") from None

    def upload_checkpoint(self, path: str | Path) -> CheckpointPublic:
        """The project's upload of this file: asked for by its sha256 first, sent (``POST
        /checkpoints``) only when the service lacks it. Its ``id`` names the teacher:
        ``{"upload": id}``."""
        p = Path(path)
        try:
            return self._send(calls.checkpoint_by_sha256(calls.file_sha256(p)))
        except ApiClientError as e:
            if e.status != 404:
                raise
        for attempt in self.retry.sync():
            with attempt, open(p, "rb") as f:
                resp = self._once("POST", "/checkpoints", files={"file": (p.name, f)}, timeout=None)
        return CheckpointPublic.model_validate(resp.json())

    # ------------------------------------------------------------------ datasets

    def upload_dataset(
        self,
        archive: str | Path,
        name: str | None = None,
        fmt: str | None = None,
        on_bad_image: str | None = None,
        on_read: Callable[[int], object] | None = None,
    ) -> DatasetPublic:
        """``POST /datasets`` with an archive (``.zip``, ``.tar``, ``.tar.gz``), unless the project
        already has it (asked by sha256 first, with the same options); the validated dataset (its
        ``id`` names it: ``{"dataset": {"id": ...}}``). ``on_bad_image``: ``skip`` leaves
        undecodable images out instead of refusing the upload; ``on_read(n)`` is called with each
        chunk's size as the archive is sent (a progress bar)."""
        p = Path(archive)
        for row in self._send(calls.datasets(500, sha256=calls.file_sha256(p))).data:
            if calls.same_dataset_options(row, fmt, on_bad_image):
                return row
        data = calls.dataset_form(name, fmt, on_bad_image)
        for attempt in self.retry.sync():
            with attempt, open(p, "rb") as f:
                body = CallbackIOWrapper(on_read, f, "read") if on_read is not None else f
                resp = self._once(
                    "POST", "/datasets", files={"file": (p.name, body)}, data=data, timeout=None
                )
        return DatasetPublic.model_validate(resp.json())

    def list_datasets(self, limit: int = 50, cursor: str | None = None) -> DatasetsPublic:
        return self._send(calls.datasets(limit, cursor))

    def get_dataset(self, dataset_id: str) -> DatasetPublic:
        return self._send(calls.get_dataset(dataset_id))

    def delete_dataset(self, dataset_id: str) -> None:
        self._send(calls.delete_dataset(dataset_id))

    # ------------------------------------------------------------------ health

    def queue(self) -> QueuePublic:
        """``GET /queue``: per pool, live workers, running and waiting counts, your waiting jobs
        in order with their positions and ETAs."""
        return self._send(calls.queue())

    def get_quota(self, project: str) -> QuotaPublic:
        return self._send(calls.get_quota(project))

    def set_quota(self, project: str, **limits: int | float | None) -> QuotaPublic:
        """Set ``max_running``, ``max_queued``, ``gpu_hours_per_day`` (None: no limit; an admin key)."""
        return self._send(calls.set_quota(project, limits))

    def health(self) -> HealthPublic:
        return self._send(calls.health())

    def ready(self) -> HealthPublic:
        """``/readyz``; ``ApiClientError`` (status 503) when not ready, after the retries."""
        return self._send(calls.ready())
