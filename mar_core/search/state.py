"""A search's progress on disk (``search/state.json`` in the job's folder), written after every
ranked trial, so that a job killed mid-search resumes where it was: finished trials are not run
again and an interrupted one resumes from its own checkpoint."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mar_core.atomic import atomic_write_json
from mar_core.errors import SpecError

__all__ = ["SearchState"]

STATE_FILE = "state.json"


@dataclass
class SearchState:
    """``results[label][str(step)]``: the trial's selection metrics at that rung (``AP``...,
    ``seconds``: its wall time for the segment); ``alive``: the candidates still in, best first
    after each rung; ``steps_done``: steps trained by finished segments (for job progress)."""

    fingerprint: str
    candidates: list[dict[str, Any]]
    rungs: list[dict[str, int]]
    selection: dict[str, Any]
    alive: list[str]
    results: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    eliminated: dict[str, int] = field(default_factory=dict)  # label -> the rung step it stopped at
    start_check: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    winner: str | None = None
    steps_done: int = 0
    kd_step_seconds: list[float] = field(default_factory=list)  # measured steps of the KD trials

    @classmethod
    def load(cls, folder: Path, fingerprint: str) -> SearchState | None:
        """The state in ``folder``; None when there is none; one of another spec is refused."""
        path = folder / STATE_FILE
        if not path.exists():
            return None
        state = cls(**json.loads(path.read_text()))
        if state.fingerprint != fingerprint:
            raise SpecError(f"{folder} holds a search of a different spec; use another workdir", "workdir")
        return state

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / STATE_FILE, asdict(self))

    def result(self, label: str, step: int) -> dict[str, float] | None:
        return self.results.get(label, {}).get(str(step))
