"""Watch the training processes of one service stack from ``/proc``: when each was seen alive,
and any moment two of the same job were alive at once (the soak's direct evidence).

A training process is ``python -m worker.child JOB_ID ... --result PATH`` with ``PATH`` under
the stack's artifact root (other stacks on the machine are ignored) that leads its own session,
as the supervisor starts it: a process it forks (to run a helper program) carries the same
command line until its ``exec`` and is not a second training process. A zombie counts as gone.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def _training_processes(artifact_root: str) -> dict[int, str]:
    """pid -> job id of the live training processes of the stack."""
    found: dict[int, str] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if b"worker.child" not in argv:
                continue
            with open(f"/proc/{entry.name}/stat") as f:
                state, _ppid, _pgrp, session = f.read().rsplit(")", 1)[1].split()[:4]
            if state == "Z" or session != entry.name:
                continue
        except OSError:  # gone meanwhile
            continue
        args = [a.decode(errors="replace") for a in argv]
        try:
            job_id, result = args[args.index("worker.child") + 1], args[args.index("--result") + 1]
        except (ValueError, IndexError):
            continue
        if result.startswith(artifact_root):
            found[int(entry.name)] = job_id
    return found


class ChildWatch:
    """A thread sampling every ``interval`` seconds until ``stop()``."""

    def __init__(self, artifact_root: Path, interval: float = 0.25):
        self.root = str(Path(artifact_root).resolve()) + os.sep
        self.interval = interval
        self.seen: dict[int, dict[str, Any]] = {}
        self.together: list[dict[str, Any]] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="child-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def sample(self) -> None:
        now = time.time()
        by_job: dict[str, list[int]] = {}
        for pid, job_id in _training_processes(self.root).items():
            rec = self.seen.setdefault(pid, {"pid": pid, "job_id": job_id, "first": now, "last": now})
            rec["last"] = now
            by_job.setdefault(job_id, []).append(pid)
        for job_id, pids in by_job.items():
            if len(pids) > 1:
                logger.error("job %s: training processes %s alive at once", job_id, pids)
                self.together.append({"job_id": job_id, "pids": sorted(pids), "at": now})
        self.samples += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:
                logger.exception("child watch: sample failed")

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        return {
            "interval_s": self.interval,
            "samples": self.samples,
            "seen": sorted(self.seen.values(), key=lambda r: r["first"]),
            "together": self.together,
        }
