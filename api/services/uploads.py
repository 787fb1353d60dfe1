"""Uploads streamed to disk under a size limit; teacher checkpoints stored in the checkpoint
root under their content's sha256 (an identical re-upload keeps the first file).

The file is never unpickled here (the API does not import torch): its pickles are read opcode
by opcode (``mar_core.pickle_scan``) and refused when ``torch.load(..., weights_only=True)``,
which the worker loads it with, would refuse them.
"""

from __future__ import annotations

import hashlib
import os
import uuid
import zipfile
from pathlib import Path
from typing import BinaryIO

from starlette.requests import Request

from api.errors import InvalidRequest, LengthRequired, PayloadTooLarge
from mar_core.pickle_scan import UnsafePickle, scan_checkpoint

ALLOWED_SUFFIXES = (".pt", ".pth", ".safetensors")
UPLOADS = "uploads"  # under the checkpoint root: one folder per project
CHUNK = 1024 * 1024
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file of an upload


def check_upload_length(request: Request, max_bytes: int) -> None:
    """Refuse an upload from its ``Content-Length`` before its body is read: 411 without one,
    413 (naming ``file``) when it exceeds ``max_bytes`` plus the multipart framing."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise LengthRequired("Content-Length: required for an upload", param="Content-Length")
    if int(length) > max_bytes + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(f"file: larger than the limit of {max_bytes} bytes", param="file")


def checkpoint_suffix(filename: str | None, path: Path) -> str:
    """The suffix to store an upload under: its name's when allowed, else what its content is
    (a zip or a pickle: ``.pt``; a safetensors header: ``.safetensors``); else 422 naming ``file``.
    The OpenAPI document cannot say what a multipart file is named, so the name only helps."""
    suffix = Path(filename or "").suffix.lower()
    if suffix in ALLOWED_SUFFIXES:
        return suffix
    with open(path, "rb") as f:
        head = f.read(9)
    size = path.stat().st_size
    if zipfile.is_zipfile(path) or head[:1] == b"\x80":  # torch.save's zip, or a legacy pickle
        return ".pt"
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size:
        return ".safetensors"
    raise InvalidRequest(
        f"file: {filename!r} is neither named *{', *'.join(ALLOWED_SUFFIXES)} nor, by its content, "
        "a torch checkpoint or a safetensors file",
        param="file",
    )


def copy_limited(src: BinaryIO, out: BinaryIO, max_bytes: int) -> tuple[int, str]:
    """Copy ``src`` to ``out`` in chunks; returns ``(size, sha256)``. ``PayloadTooLarge`` as soon
    as more than ``max_bytes`` came, ``InvalidRequest`` for an empty upload (both name ``file``)."""
    h, size = hashlib.sha256(), 0
    while chunk := src.read(CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"file: larger than the limit of {max_bytes} bytes", param="file")
        h.update(chunk)
        out.write(chunk)
    if size == 0:
        raise InvalidRequest("file: the upload is empty", param="file")
    return size, h.hexdigest()


def upload_in(folder: Path, stem: str) -> Path | None:
    """The checkpoint upload named ``stem`` (with any allowed suffix) in ``folder``, or None."""
    return next((p for s in ALLOWED_SUFFIXES if (p := folder / f"{stem}{s}").is_file()), None)


def find_checkpoint(root: Path, project: str, sha256: str) -> Path | None:
    """The upload of ``project`` whose content has this sha256 (uploads are named by it), or None."""
    return upload_in(root / UPLOADS / project, sha256)


def store_checkpoint(
    src: BinaryIO, filename: str | None, root: Path, max_bytes: int, project: str
) -> tuple[Path, int, str, bool]:
    """Copy ``src`` to ``root/uploads/<project>/<sha256><suffix>``; returns ``(path, size,
    sha256, created)``. Content-addressed: the same bytes uploaded again by the project keep the
    first file (``created`` False) and the new copy is dropped.

    Written to a temporary name and renamed once checked (``checkpoint_suffix``,
    ``check_pickles``), so a partial or refused upload is never visible; over ``max_bytes`` the
    copy stops and ``PayloadTooLarge`` is raised.
    """
    folder = root / UPLOADS / project
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{uuid.uuid4().hex}.part"
    try:
        with open(tmp, "wb") as out:
            size, digest = copy_limited(src, out, max_bytes)
        existing = find_checkpoint(root, project, digest)
        if existing is not None:
            return existing, size, digest, False
        suffix = checkpoint_suffix(filename, tmp)
        check_pickles(tmp, suffix)
        final = folder / f"{digest}{suffix}"
        os.replace(tmp, final)  # a concurrent identical upload writes the same bytes: either is fine
    finally:
        tmp.unlink(missing_ok=True)
    return final, size, digest, True


def check_pickles(path: Path, suffix: str) -> None:
    """422 naming ``file`` when ``torch.load(path, weights_only=True)`` would refuse the file's
    pickles (``mar_core.pickle_scan``): the first forbidden global or opcode is named."""
    if suffix == ".safetensors":
        return  # no pickle in it
    try:
        scan_checkpoint(path)
    except UnsafePickle as e:
        raise InvalidRequest(f"file: {e}", param="file") from None
