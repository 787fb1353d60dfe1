"""Checkpoint uploads are content-addressed within a project: the same bytes again keep the first
upload (200, the same id), ``GET /checkpoints/{sha256}`` answers before a client sends anything,
another project sees none of it, and ``MarClient.upload_checkpoint`` sends a file once (POSTs
counted at the server, by its Prometheus request histogram)."""

from __future__ import annotations

import hashlib
import re

from api.client import MarClient
from tests.api.checkpoint_writers import tiny_checkpoint
from tests.api.conftest import error_params
from tests.api.test_cli import key, live  # noqa: F401 - fixtures: the app served by uvicorn
from tests.api.test_projects import _key


def test_the_same_bytes_again_keep_the_first_upload(client, auth, settings):
    data = tiny_checkpoint()
    digest = hashlib.sha256(data).hexdigest()
    first = client.post("/checkpoints", files={"file": ("a.pth", data)}, headers=auth)
    again = client.post("/checkpoints", files={"file": ("b.pt", data)}, headers=auth)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json() and first.json()["id"] == digest
    folder = settings.checkpoint_root / "uploads" / "default"
    assert [p.name for p in folder.iterdir()] == [f"{digest}.pth"]  # no second copy, no .part left


def test_a_client_asks_by_sha256_within_its_project(client, auth, db):
    data = tiny_checkpoint()
    digest = hashlib.sha256(data).hexdigest()
    assert client.get(f"/checkpoints/{digest}", headers=auth).status_code == 404
    up = client.post("/checkpoints", files={"file": ("a.pth", data)}, headers=auth).json()
    assert client.get(f"/checkpoints/{digest}", headers=auth).json() == up
    beta = _key(db, "beta")
    assert client.get(f"/checkpoints/{digest}", headers=beta).status_code == 404  # another project's
    r = client.post("/checkpoints", files={"file": ("a.pth", data)}, headers=beta)
    assert r.status_code == 201 and r.json()["path"].startswith("uploads/beta/")
    r = client.get("/checkpoints/not-a-digest", headers=auth)
    assert r.status_code == 422 and error_params(r) == ["sha256"]


def _posts(client: MarClient) -> float:
    text = client._http.get("/metrics/prometheus").text
    found = re.search(
        r'mar_http_request_duration_seconds_count\{[^}]*method="POST"[^}]*route="/checkpoints"[^}]*\} (\S+)'
        r'|mar_http_request_duration_seconds_count\{[^}]*route="/checkpoints"[^}]*method="POST"[^}]*\} (\S+)',
        text,
    )
    return 0.0 if found is None else float(found.group(1) or found.group(2))


def test_the_client_sends_a_file_once(key, tmp_path):  # noqa: F811 - the fixture
    path = tmp_path / "teacher.pth"
    path.write_bytes(tiny_checkpoint())
    with MarClient() as client:
        first = client.upload_checkpoint(path)
        second = client.upload_checkpoint(path)
        assert first == second and first["id"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert _posts(client) == 1.0
