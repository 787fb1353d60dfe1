"""Dataset uploads are accounted by the blocks they take on disk, not by their files' sizes
(issue 33, item 4): many tiny files are refused at the limit, whatever their sizes add up to."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from api.services.archives import ExtractLimits, extract_archive
from api.settings import Settings
from tests.api.conftest import error_params

TINY_FILES = 2000  # 10 bytes each: 20 KB of data, 8 MB of 4 KiB blocks


def _tiny_files_archive(out: Path, kind: str) -> Path:
    names = [f"tiny/{i // 100}/f{i}.txt" for i in range(TINY_FILES)]
    if kind == "zip":
        with zipfile.ZipFile(out, "w") as zf:
            for name in names:
                zf.writestr(name, b"0123456789")
    else:
        with tarfile.open(out, "w:gz") as tf:
            for name in names:
                info = tarfile.TarInfo(name)
                info.size = 10
                tf.addfile(info, io.BytesIO(b"0123456789"))
    return out


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_many_tiny_files_are_refused_by_their_blocks_on_disk(client, app, auth, settings, tmp_path, kind):
    app.state.settings.max_dataset_expanded_bytes = 1024**2  # 50x the files' sizes, 1/8 of their blocks
    archive = _tiny_files_archive(tmp_path / f"tiny.{'zip' if kind == 'zip' else 'tar.gz'}", kind)
    with open(archive, "rb") as f:
        r = client.post("/datasets", files={"file": (archive.name, f)}, headers=auth)
    assert r.status_code == 422 and error_params(r) == ["file"], r.text
    assert r.json()["detail"][0]["code"] == "unsafe_archive" and "on disk" in r.text
    assert not [p for p in settings.dataset_root.rglob("*") if p.is_file()]


def test_what_is_counted_is_what_the_disk_holds(tmp_path):
    archive = _tiny_files_archive(tmp_path / "tiny.tar.gz", "tar")
    dest = tmp_path / "out"
    dest.mkdir()
    done = extract_archive(archive, "tar", dest, ExtractLimits(max_files=10**6, max_bytes=10**9))
    on_disk = sum(p.stat().st_blocks * 512 for p in dest.rglob("*"))
    assert done.files == TINY_FILES and done.bytes == 10 * TINY_FILES
    assert done.disk_bytes >= on_disk  # never less than the file system says
    assert done.disk_bytes >= TINY_FILES * done.block


def test_the_defaults_fit_a_service_host():
    st = Settings(state_dir="/tmp/mar-defaults")
    assert st.max_dataset_expanded_bytes <= 20 * 1024**3 and st.max_dataset_files <= 500_000
    assert st.max_dataset_upload_bytes <= st.max_dataset_expanded_bytes
