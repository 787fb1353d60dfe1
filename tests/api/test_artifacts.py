"""GET /jobs/{id}/artifacts and the download with its sha256."""

from __future__ import annotations

import hashlib
import os
import time

from api.db import jobs_repo
from api.db.session import session_scope
from tests.api.conftest import train_spec


def _job_with_artifact(client, auth, db, settings, content: bytes = b"weights" * 1000) -> tuple[str, bytes]:
    job_id = client.post("/jobs", json=train_spec(), headers=auth).json()["id"]
    out = settings.job_dir(job_id) / "output"
    out.mkdir(parents=True)
    (out / "model.pt").write_bytes(content)
    with session_scope(db) as s:
        jobs_repo.add_artifact(s, job_id, "model.pt", out / "model.pt")
    return job_id, content


def test_list_and_download(client, auth, db, settings):
    job_id, content = _job_with_artifact(client, auth, db, settings)
    (art,) = client.get(f"/jobs/{job_id}/artifacts", headers=auth).json()
    digest = hashlib.sha256(content).hexdigest()
    assert art["name"] == "model.pt" and art["size"] == len(content) and art["sha256"] == digest
    assert art["url"].endswith(f"/jobs/{job_id}/artifacts/model.pt")
    r = client.get(f"/jobs/{job_id}/artifacts/model.pt", headers=auth)
    assert r.status_code == 200 and r.content == content
    assert r.headers["X-Checksum-Sha256"] == digest
    assert hashlib.sha256(r.content).hexdigest() == r.headers["X-Checksum-Sha256"]


def test_artifacts_4xx(client, auth, db, settings, tmp_path):
    job_id, _ = _job_with_artifact(client, auth, db, settings)
    assert client.get("/jobs/nope/artifacts", headers=auth).status_code == 404
    assert client.get(f"/jobs/{job_id}/artifacts/other.pt", headers=auth).status_code == 404
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    with session_scope(db) as s:
        jobs_repo.add_artifact(s, job_id, "leak", outside)
    r = client.get(f"/jobs/{job_id}/artifacts/leak", headers=auth)
    assert r.status_code == 403 and r.json()["detail"][0]["code"] == "forbidden"
    (settings.job_dir(job_id) / "output" / "model.pt").unlink()
    assert client.get(f"/jobs/{job_id}/artifacts/model.pt", headers=auth).status_code == 404


def test_a_file_changed_on_disk_is_not_served_with_the_recorded_sha256(client, auth, db, settings):
    job_id, content = _job_with_artifact(client, auth, db, settings)
    path = settings.job_dir(job_id) / "output" / "model.pt"
    os.utime(path, (time.time() + 10, time.time() + 10))  # touched, same bytes: still served
    assert client.get(f"/jobs/{job_id}/artifacts/model.pt", headers=auth).status_code == 200
    path.write_bytes(b"tampered" + content[8:])  # same size, new bytes
    os.utime(path, (time.time() + 20, time.time() + 20))
    r = client.get(f"/jobs/{job_id}/artifacts/model.pt", headers=auth)
    assert r.status_code == 409 and r.json()["detail"][0]["param"] == "name"
    path.write_bytes(b"short")
    assert client.get(f"/jobs/{job_id}/artifacts/model.pt", headers=auth).status_code == 409
