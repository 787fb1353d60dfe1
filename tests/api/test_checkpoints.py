"""POST /checkpoints: a teacher upload usable as teacher.checkpoint."""

from __future__ import annotations

import hashlib

from tests.api.checkpoint_writers import tiny_checkpoint
from tests.api.conftest import distill_spec, error_params


def test_upload_then_submit(client, auth, settings):
    data = tiny_checkpoint()
    r = client.post("/checkpoints", files={"file": ("teacher.pth", data)}, headers=auth)
    assert r.status_code == 201, r.text
    body = r.json()
    path = settings.checkpoint_root / body["path"]
    assert path.parent == settings.checkpoint_root / "uploads" / "default" and path.suffix == ".pth"
    assert path.read_bytes() == data and body["size"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert not list(path.parent.glob("*.part"))
    job = client.post("/jobs", json=distill_spec(path), headers=auth)
    assert job.status_code == 201, job.text


def test_upload_name_is_generated(client, auth, settings):
    r = client.post("/checkpoints", files={"file": ("../../evil.pt", tiny_checkpoint())}, headers=auth)
    assert r.status_code == 201
    assert (
        settings.checkpoint_root / r.json()["path"]
    ).parent == settings.checkpoint_root / "uploads" / "default"
    assert "evil" not in r.json()["name"]


def test_upload_4xx(client, app, auth):
    r = client.post("/checkpoints", files={"file": ("teacher.pkl", b"x")}, headers=auth)
    assert r.status_code == 422 and error_params(r) == ["file"]
    r = client.post("/checkpoints", files={"file": ("teacher.pt", b"")}, headers=auth)
    assert r.status_code == 422 and error_params(r) == ["file"]
    assert client.post("/checkpoints", headers=auth).status_code == 422
    app.state.settings.max_upload_bytes = 100
    r = client.post("/checkpoints", files={"file": ("teacher.pt", b"x" * 101)}, headers=auth)
    assert r.status_code == 413 and error_params(r) == ["file"]
    r = client.post("/checkpoints", files={"file": ("teacher.pt", b"x" * 100_000)}, headers=auth)
    assert r.status_code == 413
