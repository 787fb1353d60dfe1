"""GET /metrics/prometheus: request latency by route template, and job gauges read from the
database (states, queue depth, durations, heartbeat age, steps per second); nothing of a spec or
a key in a label; the optional scrape token."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from api.db import claims_repo, metrics_repo, scheduling
from api.db.models import Job, utcnow
from api.db.session import session_scope
from tests.api.conftest import train_spec

PATH = "/metrics/prometheus"


def _samples(client, **kwargs) -> dict[tuple[str, tuple], float]:
    r = client.get(PATH, **kwargs)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def test_job_gauges_come_from_the_database(client, auth, db, settings):
    ids = [
        client.post("/jobs", json=train_spec(name=f"secret-name-{i}"), headers=auth).json()["id"]
        for i in range(3)
    ]
    queued, running, done = ids
    with session_scope(db) as s:
        for job_id, worker in ((running, "gpu-a"), (done, "gpu-b")):
            claims_repo.claim_job(s, job_id, worker, settings.lease_seconds)
            claims_repo.mark_running(s, job_id, worker)
        # gpu-a's last heartbeat was 7 s ago; its job's latest step took 0.25 s
        s.execute(
            update(Job)
            .where(Job.id == running)
            .values(lease_expires_at=utcnow() + timedelta(seconds=settings.lease_seconds - 7))
        )
        metrics_repo.append_metrics(s, running, 1, {"time/step_s": 0.5, "loss/total": 3.0})
        metrics_repo.append_metrics(s, running, 2, {"time/step_s": 0.25})
        claims_repo.finish_job(s, done, "gpu-b", "succeeded")
        s.execute(update(Job).where(Job.id == done).values(started_at=utcnow() - timedelta(seconds=1000)))

    got = _samples(client)
    assert got[("mar_jobs", (("state", "queued"),))] == 1
    assert got[("mar_jobs", (("state", "running"),))] == 1
    assert got[("mar_jobs", (("state", "succeeded"),))] == 1
    assert got[("mar_jobs", (("state", "failed"),))] == 0
    assert got[("mar_queue_depth", ())] == 1
    succeeded = ("state", "succeeded")
    assert got[("mar_job_duration_seconds_bucket", (("le", "900.0"), succeeded))] == 0
    assert got[("mar_job_duration_seconds_bucket", (("le", "1800.0"), succeeded))] == 1
    assert got[("mar_job_duration_seconds_count", (succeeded,))] == 1
    assert abs(got[("mar_job_duration_seconds_sum", (succeeded,))] - 1000) < 5
    assert abs(got[("mar_worker_heartbeat_age_seconds", (("worker", "gpu-a"),))] - 7) < 3
    assert ("mar_worker_heartbeat_age_seconds", (("worker", "gpu-b"),)) not in got  # holds no job now
    assert got[("mar_worker_steps_per_second", (("worker", "gpu-a"),))] == 4.0
    assert queued  # only counted
    # per pool (the default settings have one, "gpu"): no worker has written its heartbeat row
    assert got[("mar_pool_waiting_jobs", (("pool", "gpu"),))] == 1
    assert got[("mar_pool_running_jobs", (("pool", "gpu"),))] == 1
    assert got[("mar_pool_worker_slots", (("pool", "gpu"),))] == 0
    with session_scope(db) as s:
        scheduling.beat(s, "gpu-a", "gpu", 2)
    assert _samples(client)[("mar_pool_worker_slots", (("pool", "gpu"),))] == 2


def test_request_latency_by_route_template_and_status_class_without_ids(client, auth, api_key):
    job_id = client.post("/jobs", json=train_spec(name="secret-name"), headers=auth).json()["id"]
    assert client.get(f"/jobs/{job_id}", headers=auth).status_code == 200
    assert client.get(f"/jobs/{job_id}", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/no/such/path/123").status_code == 404

    text = client.get(PATH).text
    got = _samples(client)
    count = "mar_http_request_duration_seconds_count"
    assert got[(count, (("method", "GET"), ("route", "/jobs/{job_id}"), ("status", "2xx")))] == 1
    assert got[(count, (("method", "GET"), ("route", "/jobs/{job_id}"), ("status", "4xx")))] == 1
    assert got[(count, (("method", "POST"), ("route", "/jobs"), ("status", "2xx")))] == 1
    assert got[(count, (("method", "GET"), ("route", "unmatched"), ("status", "4xx")))] == 1
    for secret in (job_id, "secret-name", "default", api_key):  # ids, names, the project, the key
        assert secret not in text


def test_an_optional_token_guards_the_endpoint(app, client, auth):
    assert client.get(PATH).status_code == 200  # open by default: a scraper holds no API key
    app.state.settings.metrics_token = "scrape-secret"
    assert client.get(PATH).status_code == 401
    assert client.get(PATH, headers=auth).status_code == 401  # an API key is not the token
    _samples(client, headers={"Authorization": "Bearer scrape-secret"})
