"""A running service for the integration tests: API (uvicorn), Celery worker(s) and reaper as
real processes, a ``MarClient`` and helpers to wait on jobs.

Two flavours, chosen by the ``stack`` fixture: ``embedded`` (SQLite + ``filesystem://`` under the
state folder, the ``mar up`` default) and ``postgres-redis`` (a fresh PostgreSQL schema in the
``test`` database and a dedicated Redis db + queue name).
"""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.sdk import MarClient
from api.settings import Settings
from worker.procs import pid_alive, signal_group
from worker.stack import Part, Stack, free_port

logger = logging.getLogger(__name__)

TERMINAL = ("succeeded", "failed", "cancelled")
LEASE_SECONDS = 3
HEARTBEAT_SECONDS = 0.5


@dataclass
class ServiceStack:
    name: str
    env: dict[str, str]
    settings: Settings
    stack: Stack
    url: str = ""
    api_key: str = ""
    client: MarClient | None = None
    workers: list[Part] = field(default_factory=list)

    # ------------------------------------------------------------------ processes
    def start(self, worker_pools: tuple[str | None, ...] = (None,)) -> None:
        """API, one worker per entry of ``worker_pools`` (None: the default pool), reaper."""
        port = free_port()
        self.stack.start_api("127.0.0.1", port, timeout=90)
        self.url = f"http://127.0.0.1:{port}"
        self.client = MarClient(self.url, self.api_key, timeout=60)
        for pool in worker_pools:
            self.start_worker(pool)
        self.start_reaper()

    def start_reaper(self) -> Part:
        return self.stack.start_reaper(interval=0.5, stale_after=5)

    def reaper(self) -> Part:
        return next(p for p in self.stack.parts if p.name == "reaper")

    def start_worker(self, pool: str | None = None) -> Part:
        part = self.stack.start_worker(name=f"worker-{len(self.workers) + 1}", stop_timeout=30, pool=pool)
        self.workers.append(part)
        return part

    @property
    def worker(self) -> Part:
        """The newest worker still alive."""
        alive = [w for w in self.workers if w.proc.poll() is None]
        assert alive, f"[{self.name}] no worker alive"
        return alive[-1]

    def kill_worker(self, part: Part) -> None:
        """``kill -9`` of the worker's process group (the worker and its task threads)."""
        self.stack.kill(part)

    def worker_logs(self) -> str:
        return "".join(w.log_path.read_text(errors="replace") for w in self.workers if w.log_path)

    def child_pids(self) -> list[int]:
        """Training processes recorded by supervisors (``.worker/child.pid`` of every job)."""
        pids = []
        for pid_file in Path(self.settings.artifact_root).glob("*/.worker/child.pid"):
            try:
                pids.append(int(pid_file.read_text().strip()))
            except (OSError, ValueError):
                pass
        return pids

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.stack.stop()
        for pid in self.child_pids():  # a training child left by a killed supervisor
            if pid_alive(pid):
                logger.warning("[%s] killing stray training process %d", self.name, pid)
                signal_group(pid, signal.SIGKILL)

    # ------------------------------------------------------------------ jobs
    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self.client.submit(spec).model_dump(mode="json")

    def job(self, job_id: str) -> dict[str, Any]:
        return self.client.get_job(job_id).model_dump(mode="json")

    def wait(
        self,
        job_id: str,
        until: Callable[[dict[str, Any]], bool],
        timeout: float = 240,
        what: str = "condition",
    ) -> dict[str, Any]:
        """Poll the job until ``until(job)``; fail with the job and the log tails on timeout."""
        deadline = time.monotonic() + timeout
        job = self.job(job_id)
        while not until(job):
            if time.monotonic() > deadline:
                raise AssertionError(f"[{self.name}] timeout waiting for {what}: {job}\n{self.log_tails()}")
            time.sleep(0.1)
            job = self.job(job_id)
        return job

    def wait_terminal(self, job_id: str, timeout: float = 300) -> dict[str, Any]:
        return self.wait(job_id, lambda j: j["status"] in TERMINAL, timeout, "a terminal status")

    def events(self, job_id: str, type: str | None = None) -> list[dict[str, Any]]:
        evs = [e.model_dump(mode="json") for e in self.client.events(job_id)]
        return [e for e in evs if type is None or e["type"] == type]

    def log_tails(self, chars: int = 3000) -> str:
        parts = []
        for p in self.stack.parts + [w for w in self.workers if w not in self.stack.parts]:
            if p.log_path and p.log_path.exists():
                parts.append(
                    f"--- {p.name} ({p.log_path})\n{p.log_path.read_text(errors='replace')[-chars:]}"
                )
        for log in Path(self.settings.artifact_root).glob("*/.worker/child-*.log"):
            parts.append(f"--- {log}\n{log.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)


def base_env(state: Path, data_root: Path, checkpoint_root: Path) -> dict[str, str]:
    """Environment shared by every process of a test stack."""
    env = dict(os.environ)
    for var in ("DATABASE_URL", "BROKER_URL", "MAR_ARTIFACT_ROOT", "MAR_API_URL", "MAR_API_KEY"):
        env.pop(var, None)
    env.update(
        MAR_STATE_DIR=str(state),
        MAR_DATA_ROOTS=str(data_root),
        MAR_CHECKPOINT_ROOT=str(checkpoint_root),
        MAR_LEASE_SECONDS=str(LEASE_SECONDS),
        MAR_HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS),
        MAR_STOP_GRACE_SECONDS="30",
        MAR_QUEUE=f"mar-it-{uuid.uuid4().hex[:8]}",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",  # 2 shared cores: one thread per training process
        MKL_NUM_THREADS="1",
        MAR_WEBHOOK_ALLOW_PRIVATE="true",  # the tests' webhook receiver listens on 127.0.0.1
        MAR_WEBHOOK_PROGRESS_SECONDS="0",
    )
    return env
