"""Projects: a key sees and acts on its own project's jobs, datasets and uploads only.

The cross-project test walks every operation of the OpenAPI document, so a new route is
covered (or must be classified here) automatically.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from api.db import jobs_repo, keys_repo
from api.db.session import session_scope
from tests.api.archive_writers import pack
from tests.api.checkpoint_writers import tiny_checkpoint
from tests.api.conftest import distill_spec, error_params, make_coco, train_spec

# hold no project data (Prometheus: service-wide counts, labelled by state and worker only)
UNSCOPED = {("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics/prometheus")}
CREATES = {("post", "/jobs"), ("post", "/datasets"), ("post", "/checkpoints"), ("post", "/webhooks")}
LISTS = {("get", "/jobs"), ("get", "/datasets"), ("get", "/webhooks")}
QUEUE = ("get", "/queue")  # every pool, but only the key's own waiting jobs


def _key(db, project: str, admin: bool = False) -> dict[str, str]:
    with session_scope(db) as s:
        _, key = keys_repo.create_api_key(s, f"{project}-key", project=project, admin=admin)
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def alpha_world(client, db, settings, tmp_path):
    """Project alpha's resources: a job with an artifact and a last checkpoint, a dataset, a
    checkpoint upload."""
    alpha = _key(db, "alpha")
    job = client.post("/jobs", json=train_spec(name="alpha-job"), headers=alpha).json()
    out = settings.job_dir(job["id"]) / "model.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("{}")
    (out.parent / "checkpoints").mkdir()
    (out.parent / "checkpoints" / "last.pt").write_bytes(b"state")
    with session_scope(db) as s:
        jobs_repo.add_artifact(s, job["id"], "model.json", out)
    archive = pack(make_coco(tmp_path / "src"), tmp_path / "alpha.zip", "zip")
    with open(archive, "rb") as f:
        dataset = client.post("/datasets", files={"file": ("alpha.zip", f)}, headers=alpha).json()
    ckpt = client.post("/checkpoints", files={"file": ("t.pt", tiny_checkpoint())}, headers=alpha).json()
    client.app.state.settings.webhook_allow_private = True
    hook = client.post("/webhooks", json={"url": "http://127.0.0.1:9/h"}, headers=alpha).json()
    return {
        "key": alpha,
        "job": job,
        "dataset": dataset,
        "checkpoint": ckpt,
        "endpoint": hook,
        "job_dir": out.parent,
    }


def _fill(path: str, world: dict) -> str:
    return (
        path.replace("{job_id}", world["job"]["id"])
        .replace("{dataset_id}", world["dataset"]["id"])
        .replace("{endpoint_id}", world["endpoint"]["id"])
        .replace("{name}", "model.json")
        .replace("{which}", "last")
        .replace("{sha256}", world["checkpoint"]["sha256"])
        .replace("{project}", "alpha")
    )


def _operations(app) -> list[tuple[str, str]]:
    return [(m, p) for p, ops in app.openapi()["paths"].items() for m in ops]


def test_every_route_hides_another_projects_resources(app, client, db, alpha_world):
    beta = _key(db, "beta")
    seen = set()
    for method, path in _operations(app):
        seen.add((method, path))
        if (method, path) in UNSCOPED | CREATES:
            continue
        url = _fill(path, alpha_world)
        other = client.request(method.upper(), url, headers=beta)  # first: own may delete it
        own = client.request(method.upper(), url, headers=alpha_world["key"])
        if (method, path) in LISTS:
            assert own.status_code == other.status_code == 200
            mine, theirs = own.json(), other.json()
            mine, theirs = (mine["data"], theirs["data"]) if isinstance(mine, dict) else (mine, theirs)
            assert len(mine) == 1 and theirs == [], (path, own.text, other.text)
            continue
        if (method, path) == QUEUE:  # alpha's job may be cancelled by now: a fresh one waits
            waiting = client.post("/jobs", json=train_spec(), headers=alpha_world["key"]).json()["id"]
            own, other = (client.get(url, headers=k) for k in (alpha_world["key"], beta))
            assert own.status_code == other.status_code == 200
            mine, theirs = ([j["id"] for p in r.json()["pools"] for j in p["jobs"]] for r in (own, other))
            assert waiting in mine and theirs == [], (own.text, other.text)
            continue
        assert "{" in path, f"{method.upper()} {path}: classify this route in {__name__}"
        assert other.status_code == 404, (method, path, other.status_code, other.text)
        assert other.json()["detail"][0]["code"] == "not_found" and "alpha" not in other.text
        if method == "get":
            assert own.status_code == 200, (method, path, own.text)
    assert UNSCOPED | CREATES | LISTS | {QUEUE} <= seen

    # what beta creates may not name alpha's files, whichever way they are named
    dataset, ckpt = alpha_world["dataset"], alpha_world["checkpoint"]
    refused = [
        (train_spec(dataset={"id": dataset["id"]}), "dataset.id"),
        (distill_spec(Path(ckpt["path"])), "teacher.checkpoint"),
        (distill_spec(alpha_world["job_dir"]), "teacher.checkpoint"),
        (train_spec(kind="distill", teacher={"upload": ckpt["id"]}), "teacher.upload"),
        (train_spec(kind="distill", teacher={"job": alpha_world["job"]["id"]}), "teacher.job"),
    ]
    for spec, param in refused:
        r = client.post("/jobs", json=spec, headers=beta)
        assert r.status_code == 422 and error_params(r) == [param], (spec, r.text)
    r = client.post("/jobs", json=distill_spec(Path(ckpt["path"])), headers=alpha_world["key"])
    assert r.status_code == 201, r.text  # the owner may
    # beta's own creations stay beta's
    mine = client.post("/jobs", json=train_spec(), headers=beta).json()["id"]
    assert client.get(f"/jobs/{mine}", headers=alpha_world["key"]).status_code == 404


def test_uploaded_dataset_folder_by_path_is_hidden_too(client, db, settings, alpha_world):
    beta = _key(db, "beta")
    folder = settings.dataset_root / alpha_world["dataset"]["id"]
    r = client.post("/jobs", json=train_spec(dataset={"path": str(folder)}), headers=beta)
    assert r.status_code == 422 and error_params(r) == ["dataset.path"]
    r = client.post("/jobs", json=train_spec(dataset={"path": str(folder)}), headers=alpha_world["key"])
    assert r.status_code == 201, r.text


def test_admin_key_sees_every_project(client, db, alpha_world):
    admin = _key(db, "ops", admin=True)
    assert client.get(f"/jobs/{alpha_world['job']['id']}", headers=admin).status_code == 200
    assert client.get(f"/datasets/{alpha_world['dataset']['id']}", headers=admin).status_code == 200
    ids = {j["id"] for j in client.get("/jobs", headers=admin).json()["data"]}
    assert alpha_world["job"]["id"] in ids


def test_idempotency_keys_are_per_project(client, db, alpha_world):
    beta = _key(db, "beta")
    headers = {"Idempotency-Key": "nightly-1"}
    a = client.post("/jobs", json=train_spec(), headers={**alpha_world["key"], **headers})
    b = client.post("/jobs", json=train_spec(), headers={**beta, **headers})
    assert a.status_code == b.status_code == 201 and a.json()["id"] != b.json()["id"]
    # a mismatched replay in beta names no job of alpha's
    r = client.post("/jobs", json=train_spec(seed=9), headers={**beta, **headers})
    assert r.status_code == 422 and a.json()["id"] not in r.text
    again = client.post("/jobs", json=train_spec(), headers={**alpha_world["key"], **headers})
    assert again.status_code == 200 and again.json()["id"] == a.json()["id"]


def test_event_stream_ends_when_its_key_is_revoked(app, client, db):
    with session_scope(db) as s:
        row, key = keys_repo.create_api_key(s, "streamer", project="alpha")
    auth = {"Authorization": f"Bearer {key}"}
    job_id = client.post("/jobs", json=train_spec(), headers=auth).json()["id"]  # stays queued
    start = time.monotonic()
    with client.stream("GET", f"/jobs/{job_id}/events/stream", headers=auth) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()
        assert any(line.startswith("event: status") for line in lines)  # the queued event
        with session_scope(db) as s:
            assert keys_repo.revoke_api_key(s, row.id)
        rest = list(lines)  # returns only when the server ends the stream
    assert time.monotonic() - start < 10
    assert not any(line.startswith("event:") for line in rest)
    assert client.get(f"/jobs/{job_id}", headers=auth).status_code == 401
