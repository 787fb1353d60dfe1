"""Quotas, priorities and pools through the HTTP API: an admin sets a project's limits; a submit
over one is a 429 with ``Retry-After`` (409 where waiting cannot help) naming the limit and the
use, with nothing stored; "high" needs a key allowed it; a pool must exist; ``GET /queue``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from api.db import jobs_repo, keys_repo, scheduling
from api.db.models import Job, RunSegment, utcnow
from api.db.session import session_scope
from api.settings import Settings
from tests.api.conftest import broker_messages, error_params, make_coco, train_spec


def _key(db, project: str, admin: bool = False, high: bool = False) -> dict[str, str]:
    with session_scope(db) as s:
        _, key = keys_repo.create_api_key(
            s, f"{project}-key", project=project, admin=admin, high_priority=high
        )
    return {"Authorization": f"Bearer {key}"}


def _jobs(db) -> int:
    with session_scope(db) as s:
        return s.execute(select(func.count()).select_from(Job)).scalar_one()


@pytest.fixture
def settings(tmp_path) -> Settings:
    st = Settings(state_dir=tmp_path / "state", lease_seconds=30, pools=["gpu", "cpu"])
    st.ensure_dirs()
    make_coco(st.data_roots[0] / "coco")
    return st


def test_only_an_admin_sets_a_quota_and_a_project_reads_its_own(client, db):
    alpha, admin = _key(db, "alpha"), _key(db, "ops", admin=True)
    r = client.put("/projects/alpha/quota", json={"max_queued": 2}, headers=alpha)
    assert r.status_code == 403 and error_params(r) == ["Authorization"]
    r = client.put("/projects/alpha/quota", json={"max_queued": 2, "max_running": 1}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "project": "alpha",
        "max_running": 1,
        "max_queued": 2,
        "gpu_hours_per_day": None,
        "usage": {"queued": 0, "running": 0, "gpu_hours_per_day": 0.0},
    }
    r = client.put("/projects/alpha/quota", json={"max_queued": None}, headers=admin)  # others kept
    assert (r.json()["max_queued"], r.json()["max_running"]) == (None, 1)
    assert client.get("/projects/alpha/quota", headers=alpha).status_code == 200
    assert client.get("/projects/ops/quota", headers=alpha).status_code == 404
    r = client.put("/projects/nobody/quota", json={"max_queued": 1}, headers=admin)
    assert r.status_code == 404 and error_params(r) == ["project"]
    r = client.put("/projects/alpha/quota", json={"max_queued": -1}, headers=admin)
    assert r.status_code == 422 and error_params(r) == ["max_queued"]


def test_a_full_queue_is_a_429_with_retry_after_and_nothing_is_stored(client, db, settings):
    alpha, admin = _key(db, "alpha"), _key(db, "ops", admin=True)
    client.put("/projects/alpha/quota", json={"max_queued": 2}, headers=admin)
    for _ in range(2):
        assert client.post("/jobs", json=train_spec(), headers=alpha).status_code == 201
    messages = len(broker_messages(settings))
    r = client.post("/jobs", json=train_spec(), headers=alpha)
    assert r.status_code == 429, r.text
    assert r.headers["Retry-After"] == "60"
    (item,) = r.json()["detail"]
    assert item["code"] == "quota_exceeded" and item["param"] == "quota.max_queued"
    assert "max_queued is 2" in item["message"] and "2 queued" in item["message"]
    assert _jobs(db) == 2 and len(broker_messages(settings)) == messages
    # another project is not limited by alpha's quota
    assert client.post("/jobs", json=train_spec(), headers=_key(db, "beta")).status_code == 201


def test_used_gpu_hours_are_a_429_until_they_leave_the_window(client, db):
    alpha, admin = _key(db, "alpha"), _key(db, "ops", admin=True)
    client.put("/projects/alpha/quota", json={"gpu_hours_per_day": 1.0}, headers=admin)
    job_id = client.post("/jobs", json=train_spec(), headers=alpha).json()["id"]
    now = utcnow()
    with session_scope(db) as s:  # a 1.5 GPU-hour run that ended 20 h ago
        s.add(RunSegment(job_id=job_id, project="alpha", pool="gpu", gpus=1, start_step=0,
                         started_at=now - timedelta(hours=21.5), ended_at=now - timedelta(hours=20)))  # fmt: skip
    r = client.post("/jobs", json=train_spec(), headers=alpha)
    assert r.status_code == 429 and error_params(r) == ["quota.gpu_hours_per_day"]
    assert "1.5 GPU-hours" in r.json()["detail"][0]["message"]
    # below 1 GPU-hour once 0.5 h of the run has left the window: 2.5 h + 0.5 h from now
    assert abs(int(r.headers["Retry-After"]) - 3 * 3600) <= 60
    assert _jobs(db) == 1


def test_a_zero_limit_is_a_409_without_retry_after(client, db):
    alpha, admin = _key(db, "alpha"), _key(db, "ops", admin=True)
    client.put("/projects/alpha/quota", json={"max_running": 0}, headers=admin)
    r = client.post("/jobs", json=train_spec(), headers=alpha)
    assert r.status_code == 409 and "Retry-After" not in r.headers
    assert error_params(r) == ["quota.max_running"] and _jobs(db) == 0


def test_high_priority_needs_a_key_allowed_it(client, db):
    r = client.post("/jobs", json=train_spec(priority="high"), headers=_key(db, "alpha"))
    assert r.status_code == 403 and error_params(r) == ["priority"]
    for headers in (_key(db, "beta", high=True), _key(db, "ops", admin=True)):
        r = client.post("/jobs", json=train_spec(priority="high"), headers=headers)
        assert r.status_code == 201 and r.json()["priority"] == "high"
    r = client.post("/jobs", json=train_spec(priority="urgent"), headers=_key(db, "gamma"))
    assert r.status_code == 422 and error_params(r) == ["priority"]


def test_a_job_goes_to_its_pools_queue_and_an_unknown_pool_is_refused(client, db, settings):
    alpha = _key(db, "alpha")
    default = client.post("/jobs", json=train_spec(), headers=alpha).json()
    cpu = client.post("/jobs", json=train_spec(resources={"pool": "cpu"}), headers=alpha).json()
    assert (default["pool"], cpu["pool"]) == ("gpu", "cpu")
    queues = {m["args"][0]: m["queue"] for m in broker_messages(settings)}
    assert queues == {
        default["id"]: settings.queue,
        cpu["id"]: "cpu",
    }  # "{queue}.cpu": the file's last dot part
    r = client.post("/jobs", json=train_spec(resources={"pool": "tpu"}), headers=alpha)
    assert r.status_code == 422 and error_params(r) == ["resources.pool"]
    assert "gpu, cpu" in r.json()["detail"][0]["message"]
    assert "pool" not in default["spec"]["resources"]  # the spec as written: no run is re-keyed


def test_a_queued_job_of_a_pool_without_a_live_worker_says_so(client, db):
    alpha = _key(db, "alpha")
    job_id = client.post("/jobs", json=train_spec(resources={"pool": "cpu"}), headers=alpha).json()["id"]
    got = client.get(f"/jobs/{job_id}", headers=alpha).json()
    assert "no live worker in pool 'cpu'" in got["waiting"]
    assert client.get("/jobs", headers=alpha).json()["data"][0]["waiting"] == got["waiting"]
    with session_scope(db) as s:
        scheduling.beat(s, "w-cpu", "cpu", 1)
    assert client.get(f"/jobs/{job_id}", headers=alpha).json()["waiting"] is None


def test_get_queue_shows_my_waiting_jobs_in_order_and_pools_without_workers(client, db):
    alpha, beta, admin = _key(db, "alpha"), _key(db, "beta"), _key(db, "ops", admin=True)
    a1 = client.post("/jobs", json=train_spec(), headers=alpha).json()["id"]
    b1 = client.post("/jobs", json=train_spec(priority="low"), headers=beta).json()["id"]
    a2 = client.post("/jobs", json=train_spec(), headers=alpha).json()["id"]
    r = client.get("/queue", headers=alpha)
    assert r.status_code == 200, r.text
    gpu, cpu = r.json()["pools"]
    assert (gpu["pool"], gpu["waiting"], gpu["workers"]) == ("gpu", 3, 0)
    assert [(j["id"], j["position"]) for j in gpu["jobs"]] == [(a1, 1), (a2, 2)]  # beta's not shown
    assert "no live worker in pool 'gpu'" in gpu["note"] and cpu["waiting"] == 0
    everyone = client.get("/queue", headers=admin).json()["pools"][0]["jobs"]
    assert [j["id"] for j in everyone] == [a1, a2, b1]
    with session_scope(db) as s:
        jobs_repo.request_cancel(s, a1)
    assert [j["position"] for j in client.get("/queue", headers=alpha).json()["pools"][0]["jobs"]] == [1]
