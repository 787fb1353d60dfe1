"""Resolve user-given paths and keep them inside the configured roots (torch-free)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from mar_core.errors import PathOutsideRootError


def resolve_under(path: str | os.PathLike, roots: list[Path] | None, param: str) -> Path:
    """Return ``path`` resolved (symlinks followed), relative paths taken against the first root.

    With ``roots`` None or empty, any path is accepted (the local CLI). Otherwise a path that
    does not lie inside one of the roots raises ``PathOutsideRootError`` naming ``param``.
    """
    p = Path(path).expanduser()
    if not roots:
        return p.resolve()
    resolved_roots = [Path(r).expanduser().resolve() for r in roots]
    candidate = p if p.is_absolute() else resolved_roots[0] / p
    candidate = candidate.resolve()
    for root in resolved_roots:
        if candidate == root or root in candidate.parents:
            return candidate
    raise PathOutsideRootError(
        f"{param}: {str(path)!r} lies outside the allowed roots ({', '.join(map(str, resolved_roots))})",
        param=param,
    )


def is_inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether ``path`` is ``root`` or lies under it, both resolved (symlinks followed)."""
    p, r = Path(path).resolve(), Path(root).resolve()
    return p == r or r in p.parents


def shown_path(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``path`` relative to ``root`` (POSIX separators) for messages, else ``path`` as it is."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def redact_paths(text: str, named_roots: Mapping[str, Iterable[Path]]) -> str:
    """``text`` with each root's absolute path replaced by its name (``"<data root>"``), the
    longest first, so that messages a service shows its clients never reveal its file system."""
    pairs = [(str(root), name) for name, roots in named_roots.items() for root in roots]
    for root, name in sorted(pairs, key=lambda p: len(p[0]), reverse=True):
        if root not in ("", "/"):
            text = text.replace(root, name)
    return text
