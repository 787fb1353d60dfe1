"""Archives for the dataset upload tests: a folder packed as zip or tar.gz, and hostile ones."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path


def pack(folder: Path, out: Path, kind: str, top: str | None = None) -> Path:
    """``folder``'s files into ``out`` (``zip`` or ``tar``), under ``top/`` when given."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    prefix = f"{top}/" if top else ""
    if kind == "zip":
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in files:
                zf.write(p, prefix + p.relative_to(folder).as_posix())
    else:
        with tarfile.open(out, "w:gz") as tf:
            for p in files:
                tf.add(p, prefix + p.relative_to(folder).as_posix())
    return out


def _tar_member(tf: tarfile.TarFile, name: str, data: bytes = b"", **attrs) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for k, v in attrs.items():
        setattr(info, k, v)
    tf.addfile(info, io.BytesIO(data) if data else None)


def hostile_tar(out: Path, case: str) -> Path:
    """A tar.gz holding one hostile entry beside a harmless file."""
    with tarfile.open(out, "w:gz") as tf:
        _tar_member(tf, "ds/readme.txt", b"hello")
        if case == "slip":
            _tar_member(tf, "../../evil.txt", b"evil")
        elif case == "absolute":
            _tar_member(tf, "/tmp/evil-absolute.txt", b"evil")
        elif case == "symlink":
            _tar_member(tf, "ds/link", type=tarfile.SYMTYPE, linkname="/etc")
        elif case == "hardlink":
            _tar_member(tf, "ds/hard", type=tarfile.LNKTYPE, linkname="/etc/passwd")
        elif case == "device":
            _tar_member(tf, "ds/dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        elif case == "too_many":
            for i in range(10):
                _tar_member(tf, f"ds/f{i}.txt", b"x")
        elif case == "bomb":
            _tar_member(tf, "ds/zeros.bin", b"\0" * 3_000_000)
        else:
            raise ValueError(case)
    return out


def hostile_zip(out: Path, case: str) -> Path:
    """A zip holding one hostile entry beside a harmless file."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ds/readme.txt", "hello")
        if case == "slip":
            zf.writestr("../../evil.txt", "evil")
        elif case == "absolute":
            zf.writestr("/tmp/evil-absolute.txt", "evil")
        elif case == "symlink":
            info = zipfile.ZipInfo("ds/link")
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc")
        elif case == "device":
            info = zipfile.ZipInfo("ds/dev")
            info.external_attr = (stat.S_IFCHR | 0o644) << 16
            zf.writestr(info, "")
        elif case == "too_many":
            for i in range(10):
                zf.writestr(f"ds/f{i}.txt", "x")
        elif case == "bomb":
            zf.writestr("ds/zeros.bin", b"\0" * 3_000_000)
        else:
            raise ValueError(case)
    return out
