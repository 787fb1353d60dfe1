"""The typed SDK (``api.sdk``): typed answers from the real app, retries (connection errors, 429
and 503 honouring Retry-After, never a 4xx), one idempotency key for every try of a submit, the
async twin, and ``mypy --strict``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from api.db import jobs_repo
from api.schemas import HealthPublic, JobCreated, JobPublic
from api.sdk import ApiClientError, AsyncMarClient, MarClient, RetryPolicy
from mar_core.spec import JobSpec
from tests.api.conftest import train_spec

ROOT = Path(__file__).resolve().parents[2]
FAST = RetryPolicy(attempts=3, initial=0.01, max_wait=1.0)


class Flaky(httpx.BaseTransport):
    """Answers the first ``fail`` requests itself (``status``, or a connection error when None),
    then passes them on to ``inner``; records every request."""

    def __init__(self, inner: httpx.BaseTransport | None, fail: int, status: int | None, retry_after=None):
        self.inner, self.fail, self.status, self.retry_after = inner, fail, status, retry_after
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if len(self.requests) <= self.fail:
            if self.status is None:
                raise httpx.ConnectError("refused", request=request)
            headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
            return httpx.Response(self.status, json={"detail": "busy"}, headers=headers)
        if self.inner is None:
            return httpx.Response(200, json={"status": "ok", "checks": {}})
        request.read()
        return self.inner.handle_request(request)


def test_answers_are_the_api_schemas(client, api_key):
    with MarClient("http://testserver", api_key, transport=client._transport) as sdk:
        job = sdk.submit(JobSpec.model_validate(train_spec()))
        assert isinstance(job, JobCreated) and job.status == "queued"
        again = sdk.get_job(job.id)
        assert isinstance(again, JobPublic) and again.spec["train"]["iterations"] == 5
        assert [j.id for j in sdk.iter_jobs()] == [job.id]
        assert isinstance(sdk.health(), HealthPublic)
        with pytest.raises(ApiClientError) as e:
            sdk.submit({**train_spec(), "train": {"iterations": -1}})
        assert e.value.status == 422 and e.value.param == "train.iterations" and e.value.exit_code == 2


def test_a_submit_retried_after_a_503_keeps_its_idempotency_key_and_makes_one_job(client, api_key, db):
    flaky = Flaky(client._transport, fail=1, status=503)
    with MarClient("http://testserver", api_key, transport=flaky, retry=FAST) as sdk:
        job = sdk.submit(train_spec())
    keys = [r.headers.get("Idempotency-Key") for r in flaky.requests]
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1]
    with db() as s:
        assert [j.id for j in jobs_repo.list_jobs(s, limit=10)[0]] == [job.id]


def test_retry_after_is_honoured():
    flaky = Flaky(None, fail=1, status=429, retry_after=0.4)
    with MarClient("http://x", transport=flaky, retry=FAST) as sdk:
        t0 = time.monotonic()
        assert sdk.health().status == "ok"
    assert len(flaky.requests) == 2 and time.monotonic() - t0 >= 0.4


def test_connection_errors_are_retried_then_reported():
    flaky = Flaky(None, fail=99, status=None)
    with MarClient("http://x", transport=flaky, retry=FAST) as sdk, pytest.raises(ApiClientError) as e:
        sdk.health()
    assert (
        len(flaky.requests) == FAST.attempts and e.value.status is None and e.value.code == "api_unreachable"
    )


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422, 500])
def test_other_errors_are_not_retried(status):
    flaky = Flaky(None, fail=99, status=status)
    with MarClient("http://x", transport=flaky, retry=FAST) as sdk, pytest.raises(ApiClientError) as e:
        sdk.health()
    assert len(flaky.requests) == 1 and e.value.status == status


def test_the_async_client_submits_waits_and_lists(app, client, api_key):
    async def go() -> tuple[JobCreated, JobPublic, int]:
        transport = httpx.ASGITransport(app=app)
        async with AsyncMarClient("http://testserver", api_key, transport=transport) as sdk:
            job = await sdk.submit(train_spec())
            await sdk.cancel(job.id)  # queued: cancelled at once, so wait() returns
            done = await sdk.wait(job.id, poll_seconds=0.05, timeout=30)
            seen: list[str] = []
            await sdk.wait(job.id, on_event=lambda e: seen.append(e.type), timeout=30)
            return job, done, len(seen)

    job, done, events = asyncio.run(go())
    assert done.id == job.id and done.status == "cancelled" and events >= 2


def test_the_sdk_passes_mypy_strict():
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental", "api/sdk"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
