"""``AsyncMarClient``: the asyncio twin of ``MarClient``, the same requests (``api.sdk.calls``),
schemas and retries. Files are read and written in chunks on the event loop's thread."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Self, TypeVar

import httpx

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
from api.sdk.sse import parse_sse_async
from api.sdk.sync_client import base_settings
from mar_core.atomic import atomic_path
from mar_core.spec import JobSpec

__all__ = ["AsyncMarClient"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class AsyncMarClient:
    """Every endpoint, typed and awaitable; connection errors, 429 and 503 retried (``retry``)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
    ):
        self.base_url, headers = base_settings(base_url, api_key)
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ plumbing

    async def _once(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise ApiClientError(f"cannot reach the API at {self.base_url}: {e}") from None
        if resp.status_code >= 400:
            raise error_from(resp)
        return resp

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async for attempt in self.retry.asynchronous():
            with attempt:
                return await self._once(method, path, **kwargs)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _send(self, call: calls.Call[T]) -> T:
        resp = await self._request(
            call.method, call.path, params=call.params, json=call.json, headers=call.headers
        )
        return call.read(resp)

    # ------------------------------------------------------------------ jobs

    async def submit(
        self, spec: JobSpec | Mapping[str, Any], idempotency_key: str | None = None
    ) -> JobCreated:
        """``POST /jobs`` with an idempotency key (made when none is given)."""
        return await self._send(calls.submit(spec, idempotency_key))

    async def get_job(self, job_id: str) -> JobPublic:
        return await self._send(calls.get_job(job_id))

    async def list_jobs(
        self, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> JobsPublic:
        return await self._send(calls.list_jobs(status, limit, cursor))

    async def cancel(self, job_id: str) -> JobPublic:
        return await self._send(calls.job_action(job_id, "cancel"))

    async def pause(self, job_id: str) -> JobPublic:
        return await self._send(calls.job_action(job_id, "pause"))

    async def resume(self, job_id: str) -> JobPublic:
        return await self._send(calls.job_action(job_id, "resume"))

    async def delete_job(self, job_id: str) -> None:
        await self._send(calls.delete_job(job_id))

    async def checkpoints(self, job_id: str) -> JobCheckpointsPublic:
        return await self._send(calls.job_checkpoints(job_id))

    async def metrics(
        self, job_id: str, names: list[str] | None = None, since: int | None = None
    ) -> MetricSeries:
        return await self._send(calls.metrics(job_id, names, since))

    async def events(self, job_id: str, after: int | None = None) -> list[EventPublic]:
        return await self._send(calls.events(job_id, after))

    async def stream_events(
        self, job_id: str, after: int | None = None, max_reconnects: int = 20
    ) -> AsyncIterator[StreamEvent]:
        """Follow ``/events/stream`` until the job is finished; reconnects with ``Last-Event-ID``."""
        last = after
        failures = 0
        while True:
            headers = {"Last-Event-ID": str(last)} if last is not None else {}
            try:
                async with self._http.stream(
                    "GET",
                    f"/jobs/{job_id}/events/stream",
                    headers=headers,
                    timeout=httpx.Timeout(30.0, read=None),
                ) as resp:
                    if resp.status_code >= 400:
                        await resp.aread()
                        raise error_from(resp)
                    async for frame in parse_sse_async(resp.aiter_lines()):
                        if isinstance(frame.get("data"), dict):
                            event = StreamEvent.model_validate(frame["data"])
                            if event.id is not None:
                                last = event.id
                            failures = 0
                            yield event
                return
            except httpx.TransportError as e:
                failures += 1
                if failures > max_reconnects:
                    raise ApiClientError(f"event stream of job {job_id} lost: {e}") from None
                log.warning("event stream interrupted (%s); resuming after event %s", e, last)
                await asyncio.sleep(min(5.0, 0.5 * failures))

    async def wait(
        self,
        job_id: str,
        on_event: Callable[[StreamEvent], Awaitable[object] | object] | None = None,
        timeout: float | None = None,
        poll_seconds: float = 2.0,
    ) -> JobPublic:
        """The job once it is finished; with ``on_event`` (a function or coroutine function),
        follows the event stream, else polls. ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def check_time() -> None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not finished after {timeout} s")

        if on_event is not None:
            async for event in self.stream_events(job_id):
                result = on_event(event)
                if isinstance(result, Awaitable):
                    await result
                check_time()
            return await self.get_job(job_id)
        while True:
            job = await self.get_job(job_id)
            if job.status in states.TERMINAL:
                return job
            check_time()
            await asyncio.sleep(poll_seconds)

    # ------------------------------------------------------------------ files

    async def artifacts(self, job_id: str) -> list[ArtifactPublic]:
        return await self._send(calls.artifacts(job_id))

    async def download(self, job_id: str, name: str, out_dir: str | Path = ".") -> Path:
        """Stream one artifact to ``out_dir/<basename>``, verifying ``X-Checksum-Sha256``."""
        out = Path(out_dir) / Path(name).name
        async for attempt in self.retry.asynchronous():
            with attempt:
                await self._fetch_once(f"/jobs/{job_id}/artifacts/{name}", out)
        return out

    async def _fetch_once(self, url: str, out: Path) -> None:
        h = hashlib.sha256()
        try:
            with atomic_path(out, ".part") as tmp:
                async with self._http.stream("GET", url) as resp:
                    if resp.status_code >= 400:
                        await resp.aread()
                        raise error_from(resp)
                    expected = resp.headers.get("X-Checksum-Sha256")
                    with open(tmp, "wb") as f:
                        async for chunk in resp.aiter_bytes(1024 * 1024):
                            h.update(chunk)
                            f.write(chunk)
                if expected and h.hexdigest() != expected:
                    raise ApiClientError(
                        f"{out.name}: sha256 mismatch (got {h.hexdigest()}, expected {expected})",
                        code="checksum_mismatch",
                    )
        except httpx.TransportError as e:
            raise ApiClientError(f"download of {out.name} failed: {e}") from None

    async def upload_checkpoint(self, path: str | Path) -> CheckpointPublic:
        """Asked for by sha256 first; sent only when the service lacks it."""
        p = Path(path)
        try:
            return await self._send(calls.checkpoint_by_sha256(calls.file_sha256(p)))
        except ApiClientError as e:
            if e.status != 404:
                raise
        async for attempt in self.retry.asynchronous():
            with attempt, open(p, "rb") as f:
                resp = await self._once("POST", "/checkpoints", files={"file": (p.name, f)}, timeout=None)
        return CheckpointPublic.model_validate(resp.json())

    # ------------------------------------------------------------------ datasets

    async def upload_dataset(
        self,
        archive: str | Path,
        name: str | None = None,
        fmt: str | None = None,
        on_bad_image: str | None = None,
    ) -> DatasetPublic:
        """``POST /datasets`` unless the project has this archive read with these options."""
        p = Path(archive)
        for row in (await self._send(calls.datasets(500, sha256=calls.file_sha256(p)))).data:
            if calls.same_dataset_options(row, fmt, on_bad_image):
                return row
        data = calls.dataset_form(name, fmt, on_bad_image)
        async for attempt in self.retry.asynchronous():
            with attempt, open(p, "rb") as f:
                resp = await self._once(
                    "POST", "/datasets", files={"file": (p.name, f)}, data=data, timeout=None
                )
        return DatasetPublic.model_validate(resp.json())

    async def list_datasets(self, limit: int = 50, cursor: str | None = None) -> DatasetsPublic:
        return await self._send(calls.datasets(limit, cursor))

    async def get_dataset(self, dataset_id: str) -> DatasetPublic:
        return await self._send(calls.get_dataset(dataset_id))

    async def delete_dataset(self, dataset_id: str) -> None:
        await self._send(calls.delete_dataset(dataset_id))

    async def queue(self) -> QueuePublic:
        """``GET /queue``: per pool, live workers, running and waiting counts, your waiting jobs
        in order with their positions and ETAs."""
        return await self._send(calls.queue())

    async def get_quota(self, project: str) -> QuotaPublic:
        return await self._send(calls.get_quota(project))

    async def set_quota(self, project: str, **limits: int | float | None) -> QuotaPublic:
        """Set ``max_running``, ``max_queued``, ``gpu_hours_per_day`` (None: no limit; an admin key)."""
        return await self._send(calls.set_quota(project, limits))

    async def health(self) -> HealthPublic:
        return await self._send(calls.health())

    async def ready(self) -> HealthPublic:
        return await self._send(calls.ready())
