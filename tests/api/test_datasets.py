"""/datasets: upload (safe extraction, validation), list, show, delete; jobs naming a dataset id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.db import jobs_repo, states
from api.db.models import Job
from api.services.datasets import with_resolved_dataset
from mar_core.spec import JobSpec
from tests.api.archive_writers import hostile_tar, hostile_zip, pack
from tests.api.conftest import error_params, make_coco, make_voc, train_spec


def _upload(client, auth, archive: Path, **form):
    with open(archive, "rb") as f:
        return client.post("/datasets", files={"file": (archive.name, f)}, data=form, headers=auth)


def _leftovers(settings) -> list[Path]:
    """Everything under the dataset root but empty folders."""
    return [p for p in settings.dataset_root.rglob("*") if p.is_file()]


@pytest.mark.parametrize("kind,suffix", [("zip", ".zip"), ("tar", ".tar.gz")])
@pytest.mark.parametrize("fmt", ["coco", "voc"])
def test_upload_show_list_and_submit_by_id(client, auth, settings, tmp_path, kind, suffix, fmt, db):
    folder = (make_coco if fmt == "coco" else make_voc)(tmp_path / "src")
    r = _upload(client, auth, pack(folder, tmp_path / f"cells{suffix}", kind, top="cells"))
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["format"] == fmt and ds["name"] == "cells"
    assert set(ds["splits"]) >= {"train", "val"}
    train = ds["report"]["splits"]["train"]
    assert train["images"] == 1 and train["boxes"] == 1
    assert "path" not in ds  # no server path in answers
    assert client.get(f"/datasets/{ds['id']}", headers=auth).json() == ds
    listed = client.get("/datasets", headers=auth).json()
    assert [d["id"] for d in listed["data"]] == [ds["id"]]

    job = client.post("/jobs", json=train_spec(dataset={"id": ds["id"]}), headers=auth)
    assert job.status_code == 201, job.text
    spec_ds = job.json()["spec"]["dataset"]
    assert spec_ds["id"] == ds["id"] and spec_ds["format"] == fmt
    assert spec_ds["path"] is None and str(settings.state_dir) not in job.text  # no server path stored
    with db() as s:  # what the worker runs: the upload's folder
        resolved = with_resolved_dataset(
            JobSpec.model_validate(jobs_repo.get_job(s, job.json()["id"]).spec), s
        )
    assert Path(resolved.dataset.path).is_relative_to(settings.dataset_root / ds["id"])
    assert (Path(resolved.dataset.path) / ("annotations" if fmt == "coco" else "Annotations")).is_dir()


def test_delete_refused_while_a_job_uses_it(client, auth, settings, tmp_path, db):
    r = _upload(client, auth, pack(make_coco(tmp_path / "src"), tmp_path / "d.tar.gz", "tar"))
    ds_id = r.json()["id"]
    job_id = client.post("/jobs", json=train_spec(dataset={"id": ds_id}), headers=auth).json()["id"]
    with db() as s:
        assert s.get(Job, job_id).dataset_id == ds_id

    r = client.delete(f"/datasets/{ds_id}", headers=auth)
    assert r.status_code == 409 and job_id in r.json()["detail"][0]["message"]
    assert client.get(f"/datasets/{ds_id}", headers=auth).status_code == 200  # still there, usable
    assert client.post("/jobs", json=train_spec(dataset={"id": ds_id}), headers=auth).status_code == 201

    for j in client.get("/jobs", headers=auth).json()["data"]:
        assert client.post(f"/jobs/{j['id']}/cancel", headers=auth).json()["status"] == states.CANCELLED
    assert client.delete(f"/datasets/{ds_id}", headers=auth).status_code == 204
    assert not (settings.dataset_root / ds_id).exists() and not _leftovers(settings)
    assert client.get(f"/datasets/{ds_id}", headers=auth).status_code == 404
    assert client.delete(f"/datasets/{ds_id}", headers=auth).status_code == 404
    r = client.post("/jobs", json=train_spec(dataset={"id": ds_id}), headers=auth)
    assert r.status_code == 422 and error_params(r) == ["dataset.id"]


def test_job_spec_naming_a_dataset_wrongly(client, auth, tmp_path):
    ds_id = _upload(client, auth, pack(make_coco(tmp_path / "src"), tmp_path / "d.zip", "zip")).json()["id"]
    cases = [
        ({"id": ds_id, "path": "coco"}, "dataset.path"),
        ({"id": ds_id, "format": "voc"}, "dataset.format"),
        ({"id": ds_id, "train_split": "nope"}, "dataset.train_split"),
        ({"id": "0" * 32}, "dataset.id"),
        ({"id": "../x"}, "dataset.id"),
        ({"format": "coco"}, "dataset.path"),
    ]
    for dataset, param in cases:
        r = client.post("/jobs", json=train_spec(dataset=dataset), headers=auth)
        assert r.status_code == 422 and error_params(r) == [param], (dataset, r.text)


CASES = ["slip", "absolute", "symlink", "device", "too_many", "bomb"]


@pytest.mark.parametrize("case", [*CASES, "hardlink"])
@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_unsafe_archives_refused_and_nothing_written(client, app, auth, settings, tmp_path, kind, case):
    if kind == "zip" and case == "hardlink":
        pytest.skip("zip has no hard links")
    app.state.settings.max_dataset_files = 5
    app.state.settings.max_dataset_expanded_bytes = 1_000_000
    archive = (hostile_zip if kind == "zip" else hostile_tar)(tmp_path / f"x.{kind}", case)
    r = _upload(client, auth, archive)
    assert r.status_code == 422, r.text
    assert error_params(r) == ["file"] and r.json()["detail"][0]["code"] == "unsafe_archive"
    assert not _leftovers(settings)
    assert not list(settings.dataset_root.glob("*/")) or [
        p.name for p in settings.dataset_root.iterdir()
    ] == [".incoming"]
    assert not (settings.dataset_root.parent / "evil.txt").exists()
    assert not Path("/tmp/evil-absolute.txt").exists()
    assert client.get("/datasets", headers=auth).json()["count"] == 0


def _broken_coco(root: Path, how: str) -> Path:
    make_coco(root)
    ann = root / "annotations" / "instances_train.json"
    doc = json.loads(ann.read_text())
    if how == "missing_image":
        doc["images"][0]["file_name"] = "gone.png"
    elif how == "unknown_category":
        doc["annotations"][0]["category_id"] = 7
    elif how == "bad_json":
        ann.write_text("{not json")
        return root
    elif how == "undecodable_image":
        (root / "train" / "a.png").write_bytes(b"not an image")
    else:
        raise ValueError(how)
    ann.write_text(json.dumps(doc))
    return root


@pytest.mark.parametrize(
    "how,needle",
    [
        ("missing_image", "gone.png"),
        ("unknown_category", "7"),
        ("bad_json", "instances_train.json"),
        ("undecodable_image", "a.png"),
    ],
)
def test_invalid_data_refused_naming_the_file(client, auth, settings, tmp_path, how, needle):
    folder = _broken_coco(tmp_path / "src", how)
    r = _upload(client, auth, pack(folder, tmp_path / "d.zip", "zip"))
    assert r.status_code == 422 and error_params(r) == ["file"], r.text
    message = r.json()["detail"][0]["message"]
    assert needle in message and str(settings.state_dir) not in message
    assert not _leftovers(settings)

    # the same data named by path fails at submit, not on a worker
    target = settings.data_roots[0] / "broken"
    _broken_coco(target, how)
    r = client.post("/jobs", json=train_spec(dataset={"path": "broken"}), headers=auth)
    assert r.status_code == 422 and error_params(r)[0].startswith("dataset."), r.text
    assert needle in r.json()["detail"][0]["message"]
    assert client.get("/jobs", headers=auth).json()["count"] == 0


def test_upload_limits_and_bad_requests(client, app, auth, settings, tmp_path):
    archive = pack(make_coco(tmp_path / "src"), tmp_path / "d.zip", "zip")
    app.state.settings.max_dataset_upload_bytes = 100
    r = _upload(client, auth, archive)
    assert r.status_code == 413 and error_params(r) == ["file"]
    app.state.settings.max_dataset_upload_bytes = 10**9

    def chunks():
        yield archive.read_bytes()

    r = client.post("/datasets", content=chunks(), headers={**auth, "Content-Type": "multipart/form-data"})
    assert r.status_code == 411 and error_params(r) == ["Content-Length"]
    (tmp_path / "d.rar").write_bytes(b"Rar!\x1a\x07\x00 neither zip nor tar")  # judged by name, then content
    r = _upload(client, auth, tmp_path / "d.rar")
    assert r.status_code == 422 and error_params(r) == ["file"]
    r = client.post("/datasets", data={"name": "x"}, headers=auth)
    assert r.status_code == 422 and error_params(r) == ["file"]
    (tmp_path / "junk.zip").write_bytes(b"PK not a zip at all")
    r = _upload(client, auth, tmp_path / "junk.zip")
    assert r.status_code == 422 and error_params(r) == ["file"]
    r = _upload(client, auth, pack(make_coco(tmp_path / "src2"), tmp_path / "e.zip", "zip"), format="yaml")
    assert r.status_code == 422 and error_params(r) == ["format"]
    assert not _leftovers(settings)


def test_upload_needs_a_key_before_the_body_is_read(client, settings, tmp_path):
    archive = pack(make_coco(tmp_path / "src"), tmp_path / "d.zip", "zip")
    r = _upload(client, {}, archive)
    assert r.status_code == 401
    r = client.get("/datasets")
    assert r.status_code == 401
    assert not _leftovers(settings)


def test_list_is_paginated(client, auth, tmp_path):
    folder = make_coco(tmp_path / "src")
    ids = []
    for i in range(3):  # three archives of different bytes (the same bytes again: the same dataset)
        (folder / "NOTE.txt").write_text(f"upload {i}")
        ids.append(_upload(client, auth, pack(folder, tmp_path / f"d{i}.zip", "zip")).json()["id"])
    page = client.get("/datasets?limit=2", headers=auth).json()
    assert page["count"] == 2 and page["next_cursor"]
    rest = client.get(f"/datasets?limit=2&cursor={page['next_cursor']}", headers=auth).json()
    assert sorted(d["id"] for d in page["data"] + rest["data"]) == sorted(ids) and rest["next_cursor"] is None
