"""HTTP client of the service (httpx), used by the ``mar`` CLI and the demo.

``MarClient()`` reads ``MAR_API_URL`` / ``MAR_API_KEY``; arguments override. Every non-2xx answer
raises ``ApiClientError`` carrying the server's ``{code, message, param}`` (a 422 has
``exit_code`` 2, like any input error of the CLI). Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import httpx
from tqdm.utils import CallbackIOWrapper

from api.db import states
from mar_core.atomic import atomic_path
from mar_core.errors import MarError

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000"


class ApiClientError(MarError):
    """An error answer of the API (or the API unreachable)."""

    code = "api_error"

    def __init__(
        self,
        message: str,
        status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ):
        super().__init__(message, param=param)
        self.status = status
        self.code = code or ("api_unreachable" if status is None else "api_error")
        self.details = details or []
        self.exit_code = 2 if status in (400, 413, 422) else 1


def _error_from(resp: httpx.Response) -> ApiClientError:
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        lines = []
        for d in detail:
            msg = d.get("message") or d.get("msg") or ""
            lines.append(f"{d['param']}: {msg}" if d.get("param") else msg)
        first = detail[0]
        return ApiClientError(
            "; ".join(lines), resp.status_code, first.get("code"), first.get("param"), detail
        )
    text = detail if isinstance(detail, str) else resp.text[:500]
    return ApiClientError(f"HTTP {resp.status_code}: {text}", resp.status_code)


def parse_sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Frames of a ``text/event-stream``: ``{"id", "event", "data"}`` (comments skipped)."""
    frame: dict[str, Any] = {}
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                raw = "\n".join(data)
                try:
                    frame["data"] = json.loads(raw)
                except ValueError:
                    frame["data"] = raw
                yield frame
            frame, data = {}, []
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "data":
            data.append(value)
        elif key == "id":
            frame["id"] = int(value) if value.isdigit() else value
        elif key == "event":
            frame["event"] = value


class MarClient:
    """A thin, synchronous client of every endpoint."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = (base_url or os.environ.get("MAR_API_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = api_key or os.environ.get("MAR_API_KEY")
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
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

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise ApiClientError(f"cannot reach the API at {self.base_url}: {e}") from None
        if resp.status_code >= 400:
            raise _error_from(resp)
        return resp

    # ------------------------------------------------------------------ jobs

    def submit(self, spec: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """``POST /jobs``; returns the job (also on an idempotent replay)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._request("POST", "/jobs", json=spec, headers=headers).json()

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/jobs/{job_id}").json()

    def list_jobs(
        self, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> dict[str, Any]:
        """One page: ``{"data", "count", "next_cursor"}``."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        return self._request("GET", "/jobs", params=params).json()

    def iter_jobs(self, status: str | None = None, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every job, newest first, following the cursors."""
        cursor = None
        while True:
            page = self.list_jobs(status=status, limit=page_size, cursor=cursor)
            yield from page["data"]
            cursor = page["next_cursor"]
            if not cursor:
                return

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._request("POST", f"/jobs/{job_id}/cancel").json()

    def pause(self, job_id: str) -> dict[str, Any]:
        """``POST /jobs/{id}/pause``: the job, ``paused`` (was queued) or ``pausing``."""
        return self._request("POST", f"/jobs/{job_id}/pause").json()

    def resume(self, job_id: str) -> dict[str, Any]:
        """``POST /jobs/{id}/resume``: the paused job, queued again."""
        return self._request("POST", f"/jobs/{job_id}/resume").json()

    def delete_job(self, job_id: str) -> None:
        """``DELETE /jobs/{id}`` of a finished job: its files removed, the job hidden."""
        self._request("DELETE", f"/jobs/{job_id}")

    def checkpoints(self, job_id: str) -> dict[str, Any]:
        """``{"last", "best"}``: each ``{name, step, AP, size, modified_at, url}`` or None."""
        return self._request("GET", f"/jobs/{job_id}/checkpoints").json()

    def metrics(
        self, job_id: str, names: list[str] | None = None, since: int | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if names:
            params["names"] = ",".join(names)
        if since is not None:
            params["since"] = since
        return self._request("GET", f"/jobs/{job_id}/metrics", params=params).json()

    def events(self, job_id: str, after: int | None = None) -> list[dict[str, Any]]:
        params = {"after": after} if after is not None else {}
        return self._request("GET", f"/jobs/{job_id}/events", params=params).json()

    def stream_events(
        self, job_id: str, after: int | None = None, max_reconnects: int = 20
    ) -> Iterator[dict[str, Any]]:
        """Follow ``/events/stream`` until the job is finished; yields event dicts
        ``{"id", "job_id", "type", "data", "created_at"}`` (``id`` None for the job's live
        progress, which is not stored) and reconnects with ``Last-Event-ID``."""
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
                        raise _error_from(resp)
                    for frame in parse_sse(resp.iter_lines()):
                        if isinstance(frame.get("data"), dict):
                            if "id" in frame:  # live progress frames have none: no place to resume at
                                last = frame["id"]
                            failures = 0
                            yield frame["data"]
                return  # the server ends the stream once the job is terminal
            except httpx.TransportError as e:
                failures += 1
                if failures > max_reconnects:
                    raise ApiClientError(f"event stream of job {job_id} lost: {e}") from None
                log.warning("event stream interrupted (%s); resuming after event %s", e, last)
                time.sleep(min(5.0, 0.5 * failures))

    def wait(self, job_id: str, poll_seconds: float = 2.0, timeout: float | None = None) -> dict[str, Any]:
        """Poll until the job is terminal; returns it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if job["status"] in states.TERMINAL:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s")
            time.sleep(poll_seconds)

    # ------------------------------------------------------------------ files

    def artifacts(self, job_id: str) -> list[dict[str, Any]]:
        return self._request("GET", f"/jobs/{job_id}/artifacts").json()

    def download(self, job_id: str, name: str, out_dir: str | Path = ".") -> Path:
        """Stream one artifact to ``out_dir/<basename>``, verifying ``X-Checksum-Sha256``."""
        return self._fetch(f"/jobs/{job_id}/artifacts/{name}", Path(out_dir) / Path(name).name)

    def download_checkpoint(self, job_id: str, which: str, out: str | Path) -> Path:
        """Stream the ``last`` or ``best`` checkpoint (also mid-run) to ``out``, verifying sha256."""
        return self._fetch(f"/jobs/{job_id}/checkpoints/{which}", Path(out))

    def _fetch(self, url: str, out: Path) -> Path:
        """Stream ``url`` to ``out`` (atomically), verifying ``X-Checksum-Sha256``."""
        name = out.name
        out.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        try:
            with atomic_path(out, ".part") as tmp:
                with self._http.stream("GET", url) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        raise _error_from(resp)
                    expected = resp.headers.get("X-Checksum-Sha256")
                    with open(tmp, "wb") as f:
                        for chunk in resp.iter_bytes(1024 * 1024):
                            h.update(chunk)
                            f.write(chunk)
                if expected and h.hexdigest() != expected:
                    raise ApiClientError(
                        f"{name}: sha256 mismatch (got {h.hexdigest()}, expected {expected})",
                        code="checksum_mismatch",
                    )
        except httpx.TransportError as e:
            raise ApiClientError(f"download of {name} failed: {e}") from None
        return out

    def upload_checkpoint(self, path: str | Path) -> dict[str, Any]:
        """The project's upload of this file: asked for by its sha256 first (``GET
        /checkpoints/{sha256}``), sent (``POST /checkpoints``) only when the service lacks it. The
        returned ``id`` names the teacher: ``{"upload": id}``."""
        p = Path(path)
        with open(p, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        try:
            return self._request("GET", f"/checkpoints/{digest}").json()
        except ApiClientError as e:
            if e.status != 404:
                raise
        with open(p, "rb") as f:
            return self._request("POST", "/checkpoints", files={"file": (p.name, f)}, timeout=None).json()

    # ------------------------------------------------------------------ datasets

    def upload_dataset(
        self,
        archive: str | Path,
        name: str | None = None,
        fmt: str | None = None,
        on_bad_image: str | None = None,
        on_read: Callable[[int], object] | None = None,
    ) -> dict[str, Any]:
        """``POST /datasets`` with an archive (``.zip``, ``.tar``, ``.tar.gz``), unless the project
        already has it (asked by sha256 first, with the same options); returns the validated
        dataset (use its ``id`` as ``{"dataset": {"id": ...}}``). ``on_bad_image``:
        ``skip`` leaves undecodable images out instead of refusing the upload; ``on_read(n)`` is
        called with each chunk's size as the archive is sent (a progress bar)."""
        p = Path(archive)
        fields = (("name", name), ("format", fmt), ("on_bad_image", on_bad_image))
        data = {k: v for k, v in fields if v}
        with open(p, "rb") as f:  # asked for by its sha256 first: an archive is sent once
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        for row in self._request("GET", "/datasets", params={"sha256": digest, "limit": 500}).json()["data"]:
            same_policy = row["report"].get("on_bad_image", "refuse") == (on_bad_image or "refuse")
            if same_policy and fmt in (None, row["format"]):
                return row
        with open(p, "rb") as f:
            body = CallbackIOWrapper(on_read, f, "read") if on_read is not None else f
            return self._request(
                "POST", "/datasets", files={"file": (p.name, body)}, data=data, timeout=None
            ).json()

    def list_datasets(self, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
        """One page: ``{"data", "count", "next_cursor"}``."""
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self._request("GET", "/datasets", params=params).json()

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        return self._request("GET", f"/datasets/{dataset_id}").json()

    def delete_dataset(self, dataset_id: str) -> None:
        self._request("DELETE", f"/datasets/{dataset_id}")

    # ------------------------------------------------------------------ health

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/healthz").json()

    def ready(self) -> dict[str, Any]:
        """``/readyz`` body; raises ``ApiClientError`` (status 503) when not ready."""
        return self._request("GET", "/readyz").json()
