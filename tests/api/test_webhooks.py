"""Webhooks: URL checks (SSRF), the outbox, signed delivery with retries, project endpoints."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from api.db import claims_repo, jobs_repo, keys_repo, webhooks_repo
from api.db.models import utcnow
from api.db.session import session_scope
from tests.api.conftest import error_params, train_spec
from tests.webhook_receiver import Receiver, payload_types
from worker.webhook_delivery import backoff_seconds, deliver_due


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def http():
    with httpx.Client(timeout=5) as client:
        yield client


def _submit(client, auth, url, **extra):
    return client.post("/jobs", json=train_spec(webhooks=[{"url": url, **extra}]), headers=auth)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://10.1.2.3/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://user:pw@example.com/x",
        "ftp://example.com/x",
    ],
)
def test_private_and_odd_urls_are_refused(client, auth, url):
    r = _submit(client, auth, url)
    assert r.status_code == 422 and error_params(r) == ["webhooks.url"], r.text
    r = client.post("/webhooks", json={"url": url}, headers=auth)
    assert r.status_code == 422 and error_params(r) == ["url"], r.text


def test_allow_list(client, app, auth):
    app.state.settings.webhook_allowed_hosts = ["*.hooks.example"]
    r = _submit(client, auth, "http://127.0.0.1/x")
    assert r.status_code == 422 and "MAR_WEBHOOK_ALLOWED_HOSTS" in r.json()["detail"][0]["message"]


def test_job_event_delivered_signed_and_listed(client, app, auth, db, receiver, http):
    app.state.settings.webhook_allow_private = True
    r = _submit(client, auth, receiver.url)
    assert r.status_code == 201, r.text
    job = r.json()
    secret = job["webhook_secret"]
    assert secret.startswith("whsec_")
    assert "webhook_secret" not in client.get(f"/jobs/{job['id']}", headers=auth).json()
    client.post(f"/jobs/{job['id']}/cancel", headers=auth)  # queued -> cancelled at once

    pending = client.get(f"/jobs/{job['id']}/webhook-deliveries", headers=auth).json()
    assert [(d["event_type"], d["status"]) for d in pending] == [("job.cancelled", "pending")]
    assert deliver_due(db, app.state.settings, http) == 1
    [payload] = receiver.verified(secret)
    assert payload["type"] == "job.cancelled" and payload["data"]["job_id"] == job["id"]
    assert receiver.requests[0]["headers"]["webhook-id"] == pending[0]["id"]
    with pytest.raises(Exception):  # noqa: B017  another secret does not verify
        receiver.verified(webhooks_repo.new_secret())
    [done] = client.get(f"/jobs/{job['id']}/webhook-deliveries", headers=auth).json()
    assert done["status"] == "delivered" and len(done["attempts"]) == 1
    assert done["attempts"][0]["status_code"] == 204
    assert deliver_due(db, app.state.settings, http) == 0  # settled: never sent twice


def test_retried_with_backoff_then_delivered(client, app, auth, db, http):
    app.state.settings.webhook_allow_private = True
    flaky = Receiver(fail_first=2)
    try:
        job = _submit(client, auth, flaky.url).json()
        client.post(f"/jobs/{job['id']}/cancel", headers=auth)
        t0 = utcnow()
        assert deliver_due(db, app.state.settings, http, now=t0, base_s=5) == 1  # 500
        assert deliver_due(db, app.state.settings, http, now=t0 + timedelta(seconds=4), base_s=5) == 0
        assert deliver_due(db, app.state.settings, http, now=t0 + timedelta(seconds=5), base_s=5) == 1  # 500
        # the second failure waits 10 s
        assert deliver_due(db, app.state.settings, http, now=t0 + timedelta(seconds=14), base_s=5) == 0
        assert deliver_due(db, app.state.settings, http, now=t0 + timedelta(seconds=15), base_s=5) == 1
        [d] = client.get(f"/jobs/{job['id']}/webhook-deliveries", headers=auth).json()
        assert d["status"] == "delivered"
        assert [a["status_code"] for a in d["attempts"]] == [500, 500, 204]
        assert len(flaky.verified(job["webhook_secret"])) == 3
    finally:
        flaky.close()
    assert backoff_seconds(1, 5) == 5 and backoff_seconds(3, 5) == 20 and backoff_seconds(30, 5) == 3600


def test_gives_up_after_the_retry_window(client, app, auth, db, http):
    app.state.settings.webhook_allow_private = True
    app.state.settings.webhook_retry_seconds = 60
    job = _submit(client, auth, "http://127.0.0.1:9/nobody-listens").json()
    client.post(f"/jobs/{job['id']}/cancel", headers=auth)
    now = utcnow()
    for _ in range(10):
        deliver_due(db, app.state.settings, http, now=now, base_s=5)
        now += timedelta(seconds=40)
    [d] = client.get(f"/jobs/{job['id']}/webhook-deliveries", headers=auth).json()
    assert d["status"] == "failed" and 2 <= len(d["attempts"]) <= 4
    assert all(a["status_code"] is None and "Connect" in a["error"] for a in d["attempts"])


def test_project_endpoints(client, app, auth, db, receiver, http):
    app.state.settings.webhook_allow_private = True
    r = client.post("/webhooks", json={"url": receiver.url, "events": ["job.cancelled"]}, headers=auth)
    assert r.status_code == 201, r.text
    endpoint = r.json()
    listed = client.get("/webhooks", headers=auth).json()
    assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]
    r = client.post("/webhooks", json={"url": receiver.url, "events": ["job.exploded"]}, headers=auth)
    assert r.status_code == 422 and error_params(r) == ["events"]
    with session_scope(db) as s:
        _, other = keys_repo.create_api_key(s, "beta", project="beta")
    beta = {"Authorization": f"Bearer {other}"}
    assert client.get("/webhooks", headers=beta).json() == []
    assert client.delete(f"/webhooks/{endpoint['id']}", headers=beta).status_code == 404

    job_id = client.post("/jobs", json=train_spec(), headers=auth).json()["id"]  # no spec webhooks
    client.post(f"/jobs/{job_id}/cancel", headers=auth)
    client.post(
        f"/jobs/{client.post('/jobs', json=train_spec(), headers=beta).json()['id']}/cancel", headers=beta
    )
    assert deliver_due(db, app.state.settings, http) == 1  # beta's job tells nobody
    assert [p["data"]["job_id"] for p in receiver.verified(endpoint["secret"])] == [job_id]

    assert client.delete(f"/webhooks/{endpoint['id']}", headers=auth).status_code == 204
    assert client.get("/webhooks", headers=auth).json() == []


def test_events_filter_and_progress_throttle(client, app, auth, db, receiver, http):
    app.state.settings.webhook_allow_private = True
    job = _submit(client, auth, receiver.url, events=["job.progress"]).json()
    with session_scope(db) as s:
        assert claims_repo.claim_job(s, job["id"], "w1", 30) is not None
        assert claims_repo.mark_running(s, job["id"], "w1")
        for step in (1, 2, 3):  # within 30 s: one job.progress
            jobs_repo.set_progress(s, job["id"], step, 10)
        jobs_repo.set_progress(s, job["id"], 4, 10, webhook_every_s=0)  # unthrottled
        claims_repo.finish_job(s, job["id"], "w1", "succeeded")  # not in this webhook's events
    deliver_due(db, app.state.settings, http)
    assert payload_types(receiver) == ["job.progress", "job.progress"]
    assert [p["data"]["step"] for p in receiver.verified(job["webhook_secret"])] == [1, 4]
