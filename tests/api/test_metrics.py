"""GET /jobs/{id}/metrics."""

from __future__ import annotations

from api.db import jobs_repo
from api.db.session import session_scope
from tests.api.conftest import error_params, train_spec


def _job_with_metrics(client, auth, db) -> str:
    job_id = client.post("/jobs", json=train_spec(), headers=auth).json()["id"]
    with session_scope(db) as s:
        jobs_repo.append_metrics(s, job_id, 10, {"loss/total": 3.0, "lr": 0.01})
        jobs_repo.append_metrics(s, job_id, 20, {"loss/total": 2.0, "lr": 0.02})
        jobs_repo.append_metrics(s, job_id, 20, {"loss/total": 1.5})  # resumed run: overwrite
    return job_id


def test_metric_series(client, auth, db):
    job_id = _job_with_metrics(client, auth, db)
    body = client.get(f"/jobs/{job_id}/metrics", headers=auth).json()
    assert body["job_id"] == job_id
    assert [(p["step"], p["value"]) for p in body["series"]["loss/total"]] == [(10, 3.0), (20, 1.5)]
    assert [p["step"] for p in body["series"]["lr"]] == [10, 20] and "time" in body["series"]["lr"][0]


def test_metric_filters(client, auth, db):
    job_id = _job_with_metrics(client, auth, db)
    only = client.get(
        f"/jobs/{job_id}/metrics", params={"names": "lr,eval/AP", "since": 20}, headers=auth
    ).json()
    assert only["series"] == {"lr": [{"step": 20, "value": 0.02, "time": only["series"]["lr"][0]["time"]}]}


def test_metrics_4xx(client, auth, db):
    job_id = _job_with_metrics(client, auth, db)
    assert client.get("/jobs/nope/metrics", headers=auth).status_code == 404
    r = client.get(f"/jobs/{job_id}/metrics", params={"since": -1}, headers=auth)
    assert r.status_code == 422 and error_params(r) == ["since"]


def test_metric_body_matches_the_documented_schema_and_pydantic_time_format(client, auth, db):
    """The route serialises by hand (speed): the body must still be a valid ``MetricSeries``,
    times written exactly as pydantic writes them; a non-finite value is not stored."""
    from datetime import datetime, timezone

    from api.schemas import MetricPoint, MetricSeries

    job_id = _job_with_metrics(client, auth, db)
    with session_scope(db) as s:
        jobs_repo.append_metrics(
            s,
            job_id,
            30,
            {"loss/total": 1.0, "loss/kd/fg": float("nan")},
            time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        )
    r = client.get(f"/jobs/{job_id}/metrics", headers=auth)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    MetricSeries.model_validate(body)
    last = body["series"]["loss/total"][-1]
    assert last == {"step": 30, "value": 1.0, "time": "2026-01-02T03:04:05Z"}
    assert "loss/kd/fg" not in body["series"]
    first = body["series"]["loss/total"][0]
    assert first["time"] == MetricPoint.model_validate(first).model_dump(mode="json")["time"]
