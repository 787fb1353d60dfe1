"""Keep every file a dataset read touches inside the allowed roots, symlinks followed (torch-free).

``read_split`` (the API's check and the worker's loader both go through it) calls:

``check_folders_inside(root, images_dir, roots)`` before the files are read and again with the
images folder the reader found: every symbolic link met while walking the dataset folder and the
images folder (split folders, annotation files, label files, images; links inside linked
folders too) must resolve inside a root. Image ``file_name`` values cannot leave their folder
lexically (``validate.check_image_record`` refuses absolute names and ``..``).

Messages name the offending entry relative to the folder checked, never an absolute server path.
"""

from __future__ import annotations

import os
from pathlib import Path

from mar_core.errors import PathOutsideRootError


def _inside(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def _real_roots(roots: list[Path]) -> list[str]:
    return [os.path.realpath(os.path.expanduser(r)) for r in roots]


def check_tree_inside(folder: Path, roots: list[Path] | None, param: str = "dataset.path") -> None:
    """Raise ``PathOutsideRootError`` (``param``) at the first link under ``folder`` that
    resolves outside ``roots``. Linked folders inside the roots are walked too (once each)."""
    if not roots:
        return
    real_roots = _real_roots(roots)
    start = os.path.realpath(folder)
    seen: set[str] = set()
    pending: list[tuple[str, str]] = [(start, "")]  # (real folder, its path as the user sees it)
    while pending:
        real_dir, shown = pending.pop()
        if real_dir in seen:
            continue
        seen.add(real_dir)
        try:
            entries = list(os.scandir(real_dir))
        except OSError:
            continue  # unreadable: the reader reports it in its own words
        for entry in entries:
            name = f"{shown}/{entry.name}" if shown else entry.name
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if not _inside(target, real_roots):
                    raise PathOutsideRootError(
                        f"{param}: {name!r} in the dataset is a symbolic link that leads outside the "
                        "allowed data roots",
                        param=param,
                    )
                if os.path.isdir(target):
                    pending.append((target, name))
            elif entry.is_dir(follow_symlinks=False):
                pending.append((entry.path, name))


def check_folders_inside(root: Path, images_dir: Path | None, roots: list[Path] | None) -> None:
    """``check_tree_inside`` on the dataset folder, and on the images folder when it lies elsewhere."""
    check_tree_inside(root, roots)
    if images_dir is not None and not Path(images_dir).resolve().is_relative_to(Path(root).resolve()):
        check_tree_inside(images_dir, roots, "dataset.images_dir")
