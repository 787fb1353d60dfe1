"""Keep every file a dataset read touches inside the allowed roots, symlinks followed (torch-free).

``read_split`` (the API's check and the worker's loader both go through it) calls:

``check_folders_inside(root, images_dir, roots)`` before the files are read and again with the
images folder the reader found: every symbolic link met while walking the dataset folder and the
images folder (split folders, annotation files, label files, images; links inside linked
folders too) must resolve inside a root. Image ``file_name`` values cannot leave their folder
lexically (``validate.check_image_record`` refuses absolute names and ``..``).

``tree_fingerprint`` digests the same walk (path, size, modification time of every entry): the
API skips re-reading a dataset whose fingerprint it has already checked.

Messages name the offending entry relative to the folder checked, never an absolute server path.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from mar_core.errors import PathOutsideRootError


def _inside(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def _real_roots(roots: list[Path]) -> list[str]:
    return [os.path.realpath(os.path.expanduser(r)) for r in roots]


def walk_inside(
    folder: Path, roots: list[Path] | None, param: str = "dataset.path"
) -> Iterator[tuple[str, os.stat_result]]:
    """``(path shown relative to folder, stat)`` of every entry under ``folder``, links followed
    (linked folders walked once each). With ``roots``, raise ``PathOutsideRootError`` (``param``)
    at the first link that resolves outside them."""
    real_roots = _real_roots(roots) if roots else None
    seen: set[str] = set()
    pending: list[tuple[str, str]] = [(os.path.realpath(folder), "")]  # (real folder, shown path)
    while pending:
        real_dir, shown = pending.pop()
        if real_dir in seen:
            continue
        seen.add(real_dir)
        try:
            entries = sorted(os.scandir(real_dir), key=lambda e: e.name)
        except OSError:
            continue  # unreadable: the reader reports it in its own words
        for entry in entries:
            name = f"{shown}/{entry.name}" if shown else entry.name
            linked = entry.is_symlink()
            target = os.path.realpath(entry.path) if linked else entry.path
            if linked and real_roots is not None and not _inside(target, real_roots):
                raise PathOutsideRootError(
                    f"{param}: {name!r} in the dataset is a symbolic link that leads outside the "
                    "allowed data roots",
                    param=param,
                )
            try:
                st = os.stat(target)
            except OSError:
                continue  # a dangling link: the reader reports a missing file
            if stat.S_ISDIR(st.st_mode):
                pending.append((target, name))
            yield name, st


def check_tree_inside(folder: Path, roots: list[Path] | None, param: str = "dataset.path") -> None:
    """Raise ``PathOutsideRootError`` (``param``) at the first link under ``folder`` that
    resolves outside ``roots`` (nothing to check without roots)."""
    if roots:
        for _ in walk_inside(folder, roots, param):
            pass


def tree_fingerprint(folder: Path, roots: list[Path] | None) -> str:
    """A digest of every entry's path, size and modification time under ``folder`` (links
    followed and checked as ``walk_inside`` does): it changes when any file is added, removed,
    renamed or rewritten. One ``stat`` per entry; no file is opened."""
    digest = hashlib.blake2b(digest_size=16)
    for name, st in walk_inside(folder, roots):
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def check_folders_inside(root: Path, images_dir: Path | None, roots: list[Path] | None) -> None:
    """``check_tree_inside`` on the dataset folder, then ``check_images_dir_inside``."""
    check_tree_inside(root, roots)
    check_images_dir_inside(root, images_dir, roots)


def check_images_dir_inside(root: Path, images_dir: Path | None, roots: list[Path] | None) -> None:
    """``check_tree_inside`` on the images folder when it lies outside the dataset folder (inside
    it, the dataset folder's walk covered it)."""
    if images_dir is not None and not Path(images_dir).resolve().is_relative_to(Path(root).resolve()):
        check_tree_inside(images_dir, roots, "dataset.images_dir")
