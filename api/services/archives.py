"""Safe extraction of uploaded dataset archives (``.zip``, ``.tar``, ``.tar.gz`` / ``.tgz``).

Refused, naming the entry: absolute paths, ``..`` parts, symbolic and hard links, device files
and FIFOs (a zip entry's Unix file type, when it has one: zips written by Python's ``writestr``
or on Windows carry none and are regular files or folders by name), duplicate entries; past ``max_files`` files or ``max_bytes`` on disk (the
declared sizes of a zip are checked before anything is written; every copy is also counted, so
a lying header or a tar stream stops at the limit). Disk use is counted in the file system's
blocks, at least one per file and folder: 20,000 files of a few bytes take 80 MB, not 70 KB. Only regular files and folders are written,
each checked to resolve inside ``dest``. macOS Finder's ``__MACOSX/`` folder, its ``._*``
resource forks and ``.DS_Store`` files are left out (not written, not counted). The caller extracts into a temporary folder and
renames it into place, so a refused archive leaves nothing behind.

Written here rather than with ``tarfile``'s ``data_filter``: that filter allows links inside the
archive and says nothing about zip files or sizes.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from api.errors import InvalidRequest

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
_CHUNK = 1024 * 1024
_MACOS_FOLDER, _MACOS_FORK, _MACOS_FILE = "__MACOSX", "._", ".DS_Store"


class UnsafeArchiveError(InvalidRequest):
    """An archive entry that would write outside its folder, or past the limits (HTTP 422)."""

    code = "unsafe_archive"


@dataclass(frozen=True)
class ExtractLimits:
    max_files: int
    max_bytes: int  # on disk: whole blocks, at least one per file and folder


@dataclass
class Extracted:
    files: int = 0
    bytes: int = 0  # the files' sizes
    disk_bytes: int = 0  # the blocks they and their folders take
    block: int = 4096  # the file system's allocation unit

    def blocks(self, size: int) -> int:
        """What a file of ``size`` bytes takes on disk: whole blocks, at least one."""
        return max(-(-size // self.block), 1) * self.block


def _over(done: Extracted, extra: int, limits: ExtractLimits) -> UnsafeArchiveError | None:
    """The refusal when ``extra`` more bytes on disk would pass the limit, else None."""
    if done.disk_bytes + extra <= limits.max_bytes:
        return None
    return UnsafeArchiveError(
        f"file: the archive takes more than the limit of {limits.max_bytes} bytes on disk "
        f"({done.block}-byte blocks, at least one per file and folder)",
        param="file",
    )


def _mkdir(target: Path, done: Extracted, limits: ExtractLimits) -> None:
    """Create ``target`` and its missing parents, each counted as one block."""
    for folder in reversed([target, *target.parents]):
        if not folder.exists():
            if (error := _over(done, done.block, limits)) is not None:
                raise error
            folder.mkdir()
            done.disk_bytes += done.block


def archive_kind(filename: str | None, path: Path) -> str:
    """``zip`` or ``tar`` from the upload's file name, else from its content (zip and gzip magic
    numbers, a tar header); 422 naming ``file`` otherwise. The OpenAPI document cannot say what
    a multipart file is named, so the name only helps."""
    name = (filename or "").lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return "tar"
    with open(path, "rb") as f:
        head = f.read(512)
    if zipfile.is_zipfile(path):
        return "zip"
    if head[:2] == b"\x1f\x8b" or head[257:262] == b"ustar":  # gzip (a .tar.gz), a POSIX tar
        return "tar"
    raise InvalidRequest(
        f"file: {filename!r} is neither named *{', *'.join(ARCHIVE_SUFFIXES)} nor, by its content, "
        "a zip or tar archive",
        param="file",
    )


def _safe_parts(name: str) -> tuple[str, ...]:
    """The path parts of an entry name; ``UnsafeArchiveError`` for absolute or escaping names."""
    unified = name.replace("\\", "/")
    path = PurePosixPath(unified)
    bad = (
        not unified.strip("/")
        or "\x00" in unified
        or path.is_absolute()
        or (len(unified) > 1 and unified[1] == ":")  # a Windows drive
        or ".." in path.parts
    )
    if bad:
        raise UnsafeArchiveError(
            f"file: archive entry {name!r} is an absolute or escaping path", param="file"
        )
    return tuple(p for p in path.parts if p not in ("", "."))


def _macos_extra(name: str) -> bool:
    """A file macOS Finder adds to an archive: ``__MACOSX/...``, ``._name``, ``.DS_Store``."""
    parts = _safe_parts(name)
    if not parts:
        return False
    return parts[0] == _MACOS_FOLDER or parts[-1].startswith(_MACOS_FORK) or parts[-1] == _MACOS_FILE


def _zip_kind(info: zipfile.ZipInfo) -> str | None:
    """Why a zip entry is refused (``symbolic link``, ``not a regular file or folder``) from its
    Unix file type; None when it is a regular file or folder, or has no Unix type at all."""
    kind = stat.S_IFMT(info.external_attr >> 16)
    if not kind or kind in (stat.S_IFREG, stat.S_IFDIR):
        return None
    return "a symbolic link" if kind == stat.S_IFLNK else "not a regular file or folder"


def _target(dest: Path, name: str) -> Path:
    parts = _safe_parts(name)
    target = dest.joinpath(*parts)
    if not target.resolve().is_relative_to(dest.resolve()):
        raise UnsafeArchiveError(f"file: archive entry {name!r} resolves outside its folder", param="file")
    return target


def _copy(src: BinaryIO, target: Path, name: str, done: Extracted, limits: ExtractLimits) -> None:
    _mkdir(target.parent, done, limits)
    try:
        out = open(target, "xb")
    except FileExistsError:
        raise UnsafeArchiveError(f"file: archive entry {name!r} appears twice", param="file") from None
    written = 0
    with out:
        while True:
            if (error := _over(done, done.blocks(written), limits)) is not None:
                raise error
            chunk = src.read(_CHUNK)
            if not chunk:
                break
            written += len(chunk)
            out.write(chunk)
        out.flush()
        on_disk = os.fstat(out.fileno()).st_blocks * 512
    done.bytes += written
    done.disk_bytes += max(done.blocks(written), on_disk)


def _block_size(dest: Path) -> int:
    """The allocation unit of the file system holding ``dest`` (4 KiB on ext4 and XFS)."""
    return max(os.statvfs(dest).f_frsize, 512)


def _count_file(name: str, done: Extracted, limits: ExtractLimits) -> None:
    done.files += 1
    if done.files > limits.max_files:
        raise UnsafeArchiveError(
            f"file: the archive holds more than {limits.max_files} files (at {name!r})", param="file"
        )


def _extract_zip(archive: Path, dest: Path, limits: ExtractLimits) -> Extracted:
    done = Extracted(block=_block_size(dest))
    with zipfile.ZipFile(archive) as zf:
        infos = [i for i in zf.infolist() if not _macos_extra(i.filename)]
        declared = 0
        for info in infos:
            why = _zip_kind(info)
            if why is not None:
                raise UnsafeArchiveError(f"file: archive entry {info.filename!r} is {why}", param="file")
            _target(dest, info.filename)
            declared += done.blocks(0 if info.is_dir() else info.file_size)
        files = sum(not i.is_dir() for i in infos)
        if files > limits.max_files:
            raise UnsafeArchiveError(
                f"file: the archive holds {files} files (limit {limits.max_files})", param="file"
            )
        if declared > limits.max_bytes:
            raise UnsafeArchiveError(
                f"file: the archive takes {declared} bytes on disk (limit {limits.max_bytes}; "
                f"{done.block}-byte blocks, at least one per file and folder)",
                param="file",
            )
        for info in infos:
            target = _target(dest, info.filename)
            if info.is_dir():
                _mkdir(target, done, limits)
                continue
            _count_file(info.filename, done, limits)
            with zf.open(info) as src:
                _copy(src, target, info.filename, done, limits)
    return done


def _extract_tar(archive: Path, dest: Path, limits: ExtractLimits) -> Extracted:
    done = Extracted(block=_block_size(dest))
    with tarfile.open(archive, mode="r|*") as tf:  # a stream: members are checked as they come
        for member in tf:
            if _macos_extra(member.name):
                continue
            if member.issym() or member.islnk():
                kind = "symbolic" if member.issym() else "hard"
                raise UnsafeArchiveError(
                    f"file: archive entry {member.name!r} is a {kind} link", param="file"
                )
            if not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(
                    f"file: archive entry {member.name!r} is not a regular file or folder", param="file"
                )
            target = _target(dest, member.name)
            if member.isdir():
                _mkdir(target, done, limits)
                continue
            _count_file(member.name, done, limits)
            if (error := _over(done, done.blocks(member.size), limits)) is not None:
                raise error
            src = tf.extractfile(member)
            assert src is not None
            _copy(src, target, member.name, done, limits)
    return done


def extract_archive(archive: Path, kind: str, dest: Path, limits: ExtractLimits) -> Extracted:
    """Extract ``archive`` (``zip`` or ``tar``) into the empty folder ``dest``; returns the
    files and bytes written. ``UnsafeArchiveError`` (``param`` ``file``) for any refused entry,
    ``InvalidRequest`` for a file that is not a readable archive of its kind; on error
    ``dest`` may hold part of the archive (the caller removes it)."""
    free = shutil.disk_usage(dest).free
    limits = ExtractLimits(limits.max_files, min(limits.max_bytes, max(free - 1024**3, 0)))
    try:
        if kind == "zip":
            return _extract_zip(archive, dest, limits)
        return _extract_tar(archive, dest, limits)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError) as e:
        if isinstance(e, OSError) and e.errno is not None:
            raise
        raise InvalidRequest(f"file: not a readable {kind} archive: {e}", param="file") from None


def dataset_folder(dest: Path) -> Path:
    """The dataset's root inside an extracted archive: the one top folder when the archive
    holds a single folder (``BCCD/...``), else ``dest`` itself."""
    entries = [p for p in dest.iterdir() if p.name != _MACOS_FOLDER]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest
