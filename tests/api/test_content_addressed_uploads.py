"""Checkpoint and dataset uploads are content-addressed within a project: the same bytes again keep the first
upload (200, the same id), ``GET /checkpoints/{sha256}`` answers before a client sends anything,
another project sees none of it, and ``MarClient.upload_checkpoint`` sends a file once (POSTs
counted at the server, by its Prometheus request histogram)."""

from __future__ import annotations

import hashlib
import time

from api.datasets_cmd import pack_folder
from api.sdk import MarClient
from tests.api.archive_writers import pack
from tests.api.checkpoint_writers import tiny_checkpoint
from tests.api.conftest import error_params, make_coco
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


def _posts(client: MarClient, route: str = "/checkpoints") -> float:
    """POST requests the server answered on ``route`` (its Prometheus request histogram)."""
    text = client._http.get("/metrics/prometheus").text
    for line in text.splitlines():
        if line.startswith("mar_http_request_duration_seconds_count{") and f'route="{route}"' in line:
            if 'method="POST"' in line and 'status="2xx"' in line:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_client_sends_a_file_once(key, tmp_path):  # noqa: F811 - the fixture
    path = tmp_path / "teacher.pth"
    path.write_bytes(tiny_checkpoint())
    with MarClient() as client:
        first = client.upload_checkpoint(path)
        second = client.upload_checkpoint(path)
        assert first == second and first.id == hashlib.sha256(path.read_bytes()).hexdigest()
        assert _posts(client) == 1.0


def test_the_same_dataset_archive_again_returns_the_first_dataset(client, auth, db, settings, tmp_path):
    archive = pack(make_coco(tmp_path / "src"), tmp_path / "coco.zip", "zip")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()

    def upload(headers, **form):
        with open(archive, "rb") as f:
            return client.post("/datasets", files={"file": ("coco.zip", f)}, data=form, headers=headers)

    first, again = upload(auth), upload(auth)
    assert (first.status_code, again.status_code) == (201, 200) and again.json()["id"] == first.json()["id"]
    assert len(list(settings.dataset_root.iterdir())) == 2  # the dataset's folder and incoming/
    skip = upload(auth, on_bad_image="skip")  # other options: another dataset
    assert skip.status_code == 201 and skip.json()["id"] != first.json()["id"]
    listed = client.get("/datasets", params={"sha256": digest}, headers=auth).json()["data"]
    assert sorted(d["id"] for d in listed) == sorted([first.json()["id"], skip.json()["id"]])
    beta = _key(db, "beta")
    assert client.get("/datasets", params={"sha256": digest}, headers=beta).json()["data"] == []
    assert upload(beta).status_code == 201  # another project's copy is its own


def test_the_client_sends_an_archive_once(key, tmp_path):  # noqa: F811 - the fixture
    archive = pack(make_coco(tmp_path / "src"), tmp_path / "coco.zip", "zip")
    with MarClient() as client:
        first = client.upload_dataset(archive)
        second = client.upload_dataset(archive)
        assert first.id == second.id
        assert _posts(client, "/datasets") == 1.0


def test_a_folder_packed_twice_gives_the_same_bytes(tmp_path):
    folder = make_coco(tmp_path / "src")
    digests = set()
    for i in range(2):
        out = tmp_path / f"out{i}"
        out.mkdir()
        digests.add(hashlib.sha256(pack_folder(folder, out).read_bytes()).hexdigest())
        time.sleep(1.1)  # the gzip header held the time in seconds
    assert len(digests) == 1
