"""The hashed lock files of the images (docker/*-requirements.lock, scripts/lock.sh) are in step with
their inputs: every requirement of pyproject.toml (the worker: its dependencies and the extras the
image installs) and of docker/api-requirements.txt (the API) is locked, at a version its specifier
accepts, with hashes. No network: a stale lock fails here, `scripts/lock.sh` refreshes it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

packaging = pytest.importorskip("packaging")
from packaging.requirements import Requirement  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
WORKER_EXTRAS = ("postgres", "export", "tracking")  # scripts/lock.sh's --extra list


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock(path: Path) -> dict[str, list[tuple[str, int]]]:
    """name -> [(version, number of hashes)] of a `uv pip compile --generate-hashes` file."""
    entries: dict[str, list[tuple[str, int]]] = {}
    current = None
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][\w.-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", line)
        if m:
            current = [m.group(2), 0]
            entries.setdefault(_norm(m.group(1)), []).append(current)
        elif line.strip().startswith("--hash=sha256:") and current is not None:
            current[1] += 1
    return {k: [tuple(v) for v in vs] for k, vs in entries.items()}


def _check(requirements: list[str], lock_path: Path) -> None:
    lock = _lock(lock_path)
    assert lock, f"{lock_path} lists no package"
    for name, versions in lock.items():
        for version, hashes in versions:
            assert hashes, f"{lock_path.name}: {name}=={version} has no --hash"
    for spec in requirements:
        req = Requirement(spec)
        locked = lock.get(_norm(req.name))
        assert locked, f"{req.name} is not in {lock_path.name}: run scripts/lock.sh"
        bad = [v for v, _ in locked if not req.specifier.contains(v, prereleases=True)]
        assert not bad, f"{lock_path.name} locks {req.name} {bad}, outside {spec!r}: run scripts/lock.sh"
        for extra in req.extras:  # celery[redis] -> redis
            assert _norm(extra) in lock, f"{spec}: the packages of extra {extra} are not locked"


def test_worker_lock_follows_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in WORKER_EXTRAS:
        reqs += project["optional-dependencies"][extra]
    _check(reqs, ROOT / "docker" / "worker-requirements.lock")


def test_api_lock_follows_its_requirements():
    reqs = [
        ln.split("#")[0].strip()
        for ln in (ROOT / "docker" / "api-requirements.txt").read_text().splitlines()
        if ln.split("#")[0].strip()
    ]
    _check(reqs, ROOT / "docker" / "api-requirements.lock")
    assert not {"torch", "torchvision"} & set(_lock(ROOT / "docker" / "api-requirements.lock"))


def test_lock_script_uses_the_same_extras():
    script = (ROOT / "scripts" / "lock.sh").read_text()
    assert re.findall(r"--extra (\w+)", script) == list(WORKER_EXTRAS)


def test_stale_lock_is_detected(tmp_path):
    """The check fails on a lock whose version a specifier refuses (so it can fail at all)."""
    lock = tmp_path / "x.lock"
    lock.write_text("fastapi==0.100.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    with pytest.raises(AssertionError, match="outside"):
        _check(["fastapi>=0.110"], lock)
    with pytest.raises(AssertionError, match="not in"):
        _check(["uvicorn>=0.29"], lock)
