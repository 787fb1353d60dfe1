"""The soak's service: a private redis-server, a fresh PostgreSQL schema, the API, the reaper and
N workers as real processes (``worker.stack``), with a short lease so a killed worker's job is
re-queued within seconds. ``close()`` stops every process, drops the schema and the broker."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from api.db import keys_repo
from api.db.models import RunSegment
from api.db.probe import find_postgres
from api.db.session import make_engine, make_session_factory, session_scope
from api.sdk import MarClient
from benchmarks.redis_server import RedisServer
from worker.procs import pid_alive, signal_group
from worker.stack import Part, Stack, StackError, free_port
from worker.stack_db import PgSchema, prepare_database, settings_from_env

logger = logging.getLogger(__name__)

PG = ("127.0.0.1", "5432", "test", ("postgres", "root"))
LEASE_SECONDS = 6.0
HEARTBEAT_SECONDS = 1.0
REAPER_INTERVAL = 1.0
REAPER_STALE_AFTER = 10.0


def soak_env(state: Path, data_root: Path, database_url: str, broker_url: str) -> dict[str, str]:
    env = dict(os.environ)
    for var in (
        "DATABASE_URL",
        "BROKER_URL",
        "MAR_ARTIFACT_ROOT",
        "MAR_API_URL",
        "MAR_API_KEY",
        "MAR_MLFLOW_URI",
    ):
        env.pop(var, None)
    env.update(
        MAR_STATE_DIR=str(state),
        MAR_DATA_ROOTS=str(data_root),
        DATABASE_URL=database_url,
        BROKER_URL=broker_url,
        MAR_LEASE_SECONDS=str(LEASE_SECONDS),
        MAR_HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS),
        MAR_STOP_GRACE_SECONDS="20",
        MAR_QUEUE=f"mar-soak-{uuid.uuid4().hex[:8]}",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",  # one thread per training process: a shared 2-core machine
        MKL_NUM_THREADS="1",
    )
    return env


class SoakStack:
    def __init__(self, work: Path, data_root: Path, workers: int):
        self.work, self.data_root, self.n_workers = work, data_root, workers
        self.redis = RedisServer(free_port(), work / "logs" / "redis.log")
        self.schema: PgSchema | None = None
        self.stack: Stack | None = None
        self.client: MarClient | None = None  # an admin key: sees every project
        self.clients: dict[str, MarClient] = {}  # the projects' own keys ("b" may submit "high")
        self.project_of: dict[str, str] = {}
        self.workers: dict[int, Part] = {}
        self.generation: dict[int, int] = {}
        self.env: dict[str, str] = {}
        self._lock = threading.Lock()  # the killer thread and the closing main thread

    def start(self) -> None:
        url, why = find_postgres(*PG)
        if url is None:
            raise StackError(f"PostgreSQL unreachable at {PG[0]}:{PG[1]}/{PG[2]} ({why})")
        self.redis.start()
        self.schema = PgSchema(url, prefix="mar_soak")
        self.env = soak_env(self.work / "state", self.data_root, self.schema.url, self.redis.url)
        prepare_database(self.env, key_name="soak")
        keys = self._project_keys()
        self.stack = Stack(self.env, log_dir=self.work / "logs")
        port = free_port()
        self.stack.start_api("127.0.0.1", port, timeout=120)
        url = f"http://127.0.0.1:{port}"
        self.client = MarClient(url, keys.pop("admin"), timeout=60)
        self.clients = {project: MarClient(url, key, timeout=60) for project, key in keys.items()}
        self.stack.start_reaper(interval=REAPER_INTERVAL, stale_after=REAPER_STALE_AFTER)
        for slot in range(self.n_workers):
            self._start_worker(slot)

    def _project_keys(self) -> dict[str, str]:
        engine = make_engine(self.env["DATABASE_URL"])
        try:
            with session_scope(make_session_factory(engine)) as s:
                return {
                    "admin": keys_repo.create_api_key(s, "soak-admin", admin=True)[1],
                    "a": keys_repo.create_api_key(s, "soak-a", project="a")[1],
                    "b": keys_repo.create_api_key(s, "soak-b", project="b", high_priority=True)[1],
                }
        finally:
            engine.dispose()

    def segments(self) -> list[dict[str, Any]]:
        """Every run segment (``api.db.models.RunSegment``): project, job, start and end times."""
        engine = make_engine(self.env["DATABASE_URL"])
        try:
            with session_scope(make_session_factory(engine)) as s:
                rows = s.execute(select(RunSegment).order_by(RunSegment.id)).scalars()
                return [
                    {
                        "job_id": r.job_id,
                        "project": r.project,
                        "started_at": r.started_at.isoformat(),
                        "ended_at": r.ended_at.isoformat() if r.ended_at else None,
                    }
                    for r in rows
                ]
        finally:
            engine.dispose()

    @property
    def artifact_root(self) -> Path:
        return settings_from_env(self.env).artifact_root

    def _start_worker(self, slot: int) -> Part:
        gen = self.generation.get(slot, 0) + 1
        self.generation[slot] = gen
        part = self.stack.start_worker(name=f"worker-{slot + 1}.{gen}", stop_timeout=30)
        self.workers[slot] = part
        return part

    def kill_random_worker(self, rng: random.Random) -> dict[str, Any]:
        """SIGKILL one worker's process group and start its replacement; what was done."""
        with self._lock:
            slot = rng.randrange(self.n_workers)
            part = self.workers[slot]
            at = time.time()
            self.stack.kill(part)
            new = self._start_worker(slot)
        logger.warning("killed %s (pid %d); started %s (pid %d)", part.name, part.pid, new.name, new.pid)
        return {"at": at, "worker": part.name, "pid": part.pid, "replacement": new.name}

    def restart_broker(self, down_seconds: float) -> dict[str, Any]:
        killed = time.time()
        self.redis.restart(down_seconds)
        logger.warning("broker killed and restarted (%.1f s down)", time.time() - killed)
        return {"killed_at": killed, "up_at": time.time()}

    def close(self) -> None:
        with self._lock:
            for client in [self.client, *self.clients.values()]:
                if client is not None:
                    client.close()
            if self.stack is not None:
                self.stack.stop()
                self._kill_stray_children()
            self.redis.stop()
            if self.schema is not None:
                try:
                    self.schema.drop()
                except Exception:
                    logger.exception("could not drop schema %s", self.schema.name)

    def _kill_stray_children(self) -> None:
        for pid_file in self.artifact_root.glob("*/.worker/child.pid"):
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                continue
            if pid_alive(pid):
                logger.warning("killing stray training process %d", pid)
                signal_group(pid, 9)
