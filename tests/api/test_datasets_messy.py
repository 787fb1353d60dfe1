"""Messy images (``tests.image_corpus``) at upload and at submit by path, and archives as people
make them (Python's ``writestr``, Windows, macOS Finder): each kind gets its expected outcome;
a refused upload leaves nothing behind. The trainer's side is ``tests/core/test_messy_images.py``."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from tests.api.archive_writers import pack
from tests.api.conftest import error_params, train_spec
from tests.image_corpus import KINDS, write_yolo_corpus


def _upload(client, auth, archive: Path, **form):
    with open(archive, "rb") as f:
        return client.post("/datasets", files={"file": (archive.name, f)}, data=form, headers=auth)


def _nothing_left(settings) -> bool:
    return not [p for p in settings.dataset_root.rglob("*") if p.is_file()]


def _yolo_job(dataset: dict) -> dict:
    return train_spec(dataset={"format": "yolo", **dataset})


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_at_upload_and_submit_by_path(client, auth, settings, tmp_path, kind):
    folder = write_yolo_corpus(tmp_path / "src", ["jpeg", kind])
    file_name = f"1_{kind}{KINDS[kind][1]}"
    archive = pack(folder, tmp_path / "d.zip", "zip", top="messy")
    shutil.copytree(folder, settings.data_roots[0] / "messy")
    r = _upload(client, auth, archive)
    by_path = client.post("/jobs", json=_yolo_job({"path": "messy"}), headers=auth)
    if KINDS[kind][2] == "refused":
        for resp, param in ((r, "file"), (by_path, "dataset.path")):
            assert resp.status_code == 422 and error_params(resp) == [param], resp.text
            message = resp.json()["detail"][0]["message"]
            assert file_name in message and str(settings.state_dir) not in message
        assert _nothing_left(settings)
        return
    assert r.status_code == 201, r.text
    assert by_path.status_code == 201, by_path.text
    train = r.json()["report"]["splits"]["train"]
    assert (train["images"], train["boxes"], train["clipped"], train["size_mismatch"]) == (2, 2, 0, 0)
    repaired = [w for w in r.json()["report"]["warnings"] if "repaired" in w]
    if KINDS[kind][2] == "repaired":
        assert (
            train["repaired_files"] == [file_name]
            and file_name in repaired[0]
            and "1 repaired" in repaired[0]
        )
    else:
        assert train["repaired"] == 0 and not repaired


def test_skip_at_upload_carries_to_the_jobs(client, auth, settings, tmp_path):
    folder = write_yolo_corpus(tmp_path / "src", ["jpeg", "truncated_jpeg", "empty", "garbage"])
    archive = pack(folder, tmp_path / "d.tar.gz", "tar", top="messy")
    r = _upload(client, auth, archive, on_bad_image="skip")
    assert r.status_code == 201, r.text
    report = r.json()["report"]
    train = report["splits"]["train"]
    assert (train["images"], train["skipped"], train["repaired"]) == (2, 2, 1)
    assert train["skipped_files"] == [
        "2_empty.jpg (the file is empty)",
        "3_garbage.png (not a JPEG, PNG, WebP, BMP or TIFF image)",
    ]
    assert report["on_bad_image"] == "skip"
    ds_id = r.json()["id"]

    job = client.post("/jobs", json=train_spec(dataset={"id": ds_id}), headers=auth)
    assert job.status_code == 201 and job.json()["spec"]["dataset"]["on_bad_image"] == "skip", job.text
    refuse = client.post(
        "/jobs", json=train_spec(dataset={"id": ds_id, "on_bad_image": "refuse"}), headers=auth
    )
    assert refuse.status_code == 422 and error_params(refuse) == ["dataset.on_bad_image"]

    bad = _upload(client, auth, archive, on_bad_image="sometimes")
    assert bad.status_code == 422 and error_params(bad) == ["on_bad_image"]

    shutil.copytree(folder, settings.data_roots[0] / "messy")
    by_path = client.post("/jobs", json=_yolo_job({"path": "messy", "on_bad_image": "skip"}), headers=auth)
    assert by_path.status_code == 201, by_path.text


def _zip_by_hand(folder: Path, out: Path, how: str) -> Path:
    """``writestr``: names and bytes only (no Unix mode bits); ``windows``: made on Windows
    (``create_system`` 0, MS-DOS attributes, backslashes never used by zip but folders as entries);
    ``finder``: macOS Finder's ``__MACOSX/`` resource forks, ``._`` files and ``.DS_Store``."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        if how == "windows":
            for d in sorted({p.parent for p in files}):
                info = zipfile.ZipInfo(f"messy/{d.relative_to(folder).as_posix()}/".replace("/./", "/"))
                info.create_system, info.external_attr = 0, 0x10
                zf.writestr(info, b"")
        for p in files:
            name = f"messy/{p.relative_to(folder).as_posix()}"
            if how == "windows":
                info = zipfile.ZipInfo(name)
                info.create_system, info.external_attr = 0, 0x20  # archive bit, no Unix mode
                zf.writestr(info, p.read_bytes())
            else:
                zf.writestr(name, p.read_bytes())
            if how == "finder":
                zf.writestr(f"__MACOSX/{Path(name).parent.as_posix()}/._{p.name}", b"\0\5\26\7 resource fork")
                zf.writestr(f"{Path(name).parent.as_posix()}/._{p.name}", b"\0\5\26\7 resource fork")
        if how == "finder":
            zf.writestr("messy/.DS_Store", b"Bud1 finder state")
    return out


@pytest.mark.parametrize("how", ["writestr", "windows", "finder"])
def test_zips_as_people_make_them(client, auth, settings, tmp_path, how):
    folder = write_yolo_corpus(tmp_path / "src", ["jpeg", "png_named_jpg"])
    r = _upload(client, auth, _zip_by_hand(folder, tmp_path / "d.zip", how))
    assert r.status_code == 201, r.text
    assert r.json()["report"]["splits"]["train"]["images"] == 2 and r.json()["report"]["warnings"] == []
    stored = settings.dataset_root / r.json()["id"]
    assert not [
        p for p in stored.rglob("*") if p.name.startswith("._") or p.name in ("__MACOSX", ".DS_Store")
    ]
    assert r.json()["files"] == sum(1 for p in folder.rglob("*") if p.is_file())
