"""GET /jobs/{id}/metrics."""

from __future__ import annotations

from api.db import metrics_repo
from api.db.session import session_scope
from api.metrics_cache import MetricsCache
from api.schemas import MetricColumns
from tests.api.conftest import error_params, train_spec


def _job_with_metrics(client, auth, db) -> str:
    job_id = client.post("/jobs", json=train_spec(), headers=auth).json()["id"]
    with session_scope(db) as s:
        metrics_repo.append_metrics(s, job_id, 10, {"loss/total": 3.0, "lr": 0.01})
        metrics_repo.append_metrics(s, job_id, 20, {"loss/total": 2.0, "lr": 0.02})
        metrics_repo.append_metrics(s, job_id, 20, {"loss/total": 1.5})  # resumed run: overwrite
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
        metrics_repo.append_metrics(
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


def _series(job_id: str, points: int, db) -> None:
    with session_scope(db) as s:
        for step in range(points):
            metrics_repo.append_metrics(s, job_id, step, {"loss/total": 1.0 / (1 + step)})


def test_columns_and_max_points_thin_each_series_keeping_its_ends(client, auth, db):
    job_id = client.post("/jobs", json=train_spec(), headers=auth).json()["id"]
    _series(job_id, 101, db)
    r = client.get(f"/jobs/{job_id}/metrics", params={"format": "columns", "max_points": 11}, headers=auth)
    col = MetricColumns.model_validate(r.json()).series["loss/total"]
    assert col.step == list(range(0, 101, 10))
    assert col.value == [1.0 / (1 + s) for s in col.step]
    full = client.get(f"/jobs/{job_id}/metrics", params={"format": "columns"}, headers=auth).json()
    assert full["series"]["loss/total"]["step"] == list(range(101))
    assert (
        len(client.get(f"/jobs/{job_id}/metrics?max_points=3", headers=auth).json()["series"]["loss/total"])
        == 3
    )
    assert error_params(client.get(f"/jobs/{job_id}/metrics?max_points=1", headers=auth)) == ["max_points"]
    assert error_params(client.get(f"/jobs/{job_id}/metrics?format=csv", headers=auth)) == ["format"]


def test_etag_gives_a_304_until_the_next_metric_write(client, auth, db):
    job_id = _job_with_metrics(client, auth, db)
    first = client.get(f"/jobs/{job_id}/metrics", headers=auth)
    etag = first.headers["ETag"]
    again = client.get(f"/jobs/{job_id}/metrics", headers={**auth, "If-None-Match": etag})
    assert again.status_code == 304 and again.headers["ETag"] == etag and again.content == b""
    with session_scope(db) as s:
        metrics_repo.append_metrics(s, job_id, 30, {"loss/total": 1.0})
    changed = client.get(f"/jobs/{job_id}/metrics", headers={**auth, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert [p["step"] for p in changed.json()["series"]["loss/total"]] == [10, 20, 30]


def test_the_cache_serves_the_same_bytes_and_never_a_stale_series(app, client, auth, db):
    job_id = _job_with_metrics(client, auth, db)
    url = f"/jobs/{job_id}/metrics"
    assert client.get(url, headers=auth).content == client.get(url, headers=auth).content
    assert len(app.state.metrics_cache.entries) == 1
    with session_scope(db) as s:
        metrics_repo.append_metrics(s, job_id, 20, {"loss/total": 0.5})  # an overwrite, as a resume writes
    assert client.get(url, headers=auth).json()["series"]["loss/total"][-1]["value"] == 0.5
    app.state.metrics_cache = MetricsCache(0)  # MAR_METRICS_CACHE_BYTES=0: built every time
    assert client.get(url, headers=auth).json()["series"]["loss/total"][-1]["value"] == 0.5
