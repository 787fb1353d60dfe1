"""The results cache: one JSON file per run in ``benchmarks/results/`` (committed).

A run is identified by the sha256 of its *logical* spec: the job spec as validated by
``JobSpec`` with machine-independent paths (``dataset.path`` is the dataset's logical name,
``teacher.checkpoint`` is ``teacher:<key of the teacher's spec>``), the name dropped. The same
spec on another machine or in another session hashes to the same key, so a preset can be
completed across sessions; any change of a spec value (a default included) gives a new key.

Files: ``<kind>-<preset>-<group>-<label>-s<seed>-<key[:12]>.json`` (the name is for humans;
lookups read the ``key`` field). Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mar_core.atomic import atomic_write_json
from mar_core.spec_hash import run_fingerprint

log = logging.getLogger(__name__)

# The benchmark's data folder: ``results/`` (committed), ``teachers/`` (committed) and ``cache/``
# (ignored). By default the folder of this package, i.e. ``benchmarks/`` of a checkout; the
# ``MAR_BENCH_DIR`` environment variable points elsewhere (an installed copy has no results).
BENCH_DIR = Path(os.environ.get("MAR_BENCH_DIR") or Path(__file__).resolve().parent)
REPO_ROOT = BENCH_DIR.parent  # BENCHMARKS.md, relative paths of presets (BCCD), git revision
DEFAULT_RESULTS = BENCH_DIR / "results"
DEFAULT_CACHE = BENCH_DIR / "cache"
SCHEMA_VERSION = 1


def spec_key(logical_spec: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of a logical spec (without ``name`` / ``max_attempts``)."""
    return run_fingerprint(logical_spec)


class ResultStore:
    """Read and write the run records of a results folder."""

    def __init__(self, root: Path | str = DEFAULT_RESULTS):
        self.root = Path(root)
        self._index: dict[str, Path] | None = None

    def _scan(self) -> dict[str, Path]:
        if self._index is None:
            self._index = {}
            for path in sorted(self.root.glob("*.json")):
                try:
                    rec = json.loads(path.read_text())
                except (OSError, json.JSONDecodeError) as e:
                    log.warning("skipping unreadable result %s: %s", path, e)
                    continue
                if isinstance(rec, dict) and "key" in rec:
                    self._index[rec["key"]] = path
        return self._index

    def get(self, key: str) -> dict[str, Any] | None:
        """The record of run ``key``, or None when it has not been run."""
        path = self._scan().get(key)
        return json.loads(path.read_text()) if path else None

    def has(self, key: str) -> bool:
        return key in self._scan()

    def put(self, record: dict[str, Any]) -> Path:
        """Store a record (it must hold ``key``, ``kind``, ``preset``, ``group``, ``label``, ``seed``)."""
        key = record["key"]
        old = self._scan().get(key)
        name = "-".join(str(record.get(k, "")) for k in ("kind", "preset", "group", "label"))
        stem = re.sub(r"[^A-Za-z0-9._=-]+", "_", f"{name}-s{record.get('seed', 0)}-{key[:12]}")
        path = self.root / f"{stem}.json"
        atomic_write_json(path, {"schema": SCHEMA_VERSION, **record})
        if old is not None and old != path:
            old.unlink(missing_ok=True)
        self._scan()[key] = path
        return path

    def records(self, kind: str | None = None, preset: str | None = None) -> Iterator[dict[str, Any]]:
        """Every record, optionally of one ``kind`` ("student", "teacher", "tune") and preset."""
        for path in self._scan().values():
            rec = json.loads(path.read_text())
            if (kind is None or rec.get("kind") == kind) and (preset is None or rec.get("preset") == preset):
                yield rec

    def perf_files(self) -> list[Path]:
        """``perf-*.json`` files, oldest first."""
        return sorted(self.root.glob("perf-*.json"))

    def newest_perf_parts(self, preset: str) -> dict[str, tuple[str, dict[str, Any], dict[str, Any]]]:
        """Each perf part of ``preset`` from the newest file that holds it: part -> (file name,
        the file's data, the part's result)."""
        newest: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}
        for f in self.perf_files():
            if f.name.startswith(f"perf-{preset}-"):
                data = json.loads(f.read_text())
                for part, result in data.get("parts", {}).items():
                    newest[part] = (f.name, data, result)
        return newest
