"""Start and stop the parts of the service as child processes: API, workers, reaper.

Used by ``mar up`` / ``mar demo`` (the embedded default: SQLite + ``filesystem://`` under the
state folder) and by the integration tests (PostgreSQL + Redis through the environment). Each
part runs in its own session (``start_new_session=True``): a Ctrl-C in the terminal reaches only
the parent, which stops the parts in order (API and reaper, then the workers, whose warm
shutdown lets the training child checkpoint) and SIGKILLs any process group that outlives
``stop_timeout``. A part whose parent dies without stopping it (SIGKILL) stops itself
(``mar_core.parent_watch.stop_with_parent_from_env``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from mar_core.errors import MarError
from mar_core.parent_watch import STOP_WITH_PARENT_ENV
from worker.procs import signal_group, stop_process_group

logger = logging.getLogger(__name__)


class StackError(MarError):
    """A part of the stack did not start (port taken, database unreachable, ...)."""

    code = "stack_failed"


MAR = [sys.executable, "-m", "mar_cli.main"]  # the ``mar`` console script of this interpreter


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_http_ok(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200; raise ``StackError`` on timeout or if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"the process serving {url} exited with code {proc.returncode} (see its log)")
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except httpx.HTTPError as e:
            last = e
        time.sleep(0.2)
    raise StackError(f"{url} did not answer within {timeout:.0f} s (last: {last})")


@dataclass
class Part:
    """One started process of the stack."""

    name: str
    proc: subprocess.Popen
    log_path: Path | None
    stop_timeout: float

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class Stack:
    """The processes of one service instance, all given the same environment ``env``."""

    env: dict[str, str]
    log_dir: Path | None = None  # None: the parts write to this process's stdout/stderr
    cwd: Path | None = None
    parts: list[Part] = field(default_factory=list)

    def _start(self, name: str, argv: list[str], stop_timeout: float) -> Part:
        log_path = None
        with contextlib.ExitStack() as files:
            out: IO | None = None
            if self.log_dir is not None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                log_path = self.log_dir / f"{name}.log"
                out = files.enter_context(open(log_path, "ab"))  # the child keeps its own descriptor
            env = {**self.env, STOP_WITH_PARENT_ENV: str(os.getpid())}  # parts stop if this process dies
            proc = subprocess.Popen(
                argv, env=env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT if out else None, start_new_session=True,
            )  # fmt: skip
        part = Part(name, proc, log_path, stop_timeout)
        self.parts.append(part)
        logger.info("started %s (pid %d)%s", name, proc.pid, f", log {log_path}" if log_path else "")
        return part

    def start_api(self, host: str, port: int, timeout: float = 60.0) -> Part:
        """``mar api`` (uvicorn); returns once ``/healthz`` answers."""
        argv = [*MAR, "api", "--host", host, "--port", str(port), "--log-level", "warning"]
        part = self._start("api", argv, stop_timeout=10)
        wait_http_ok(f"http://{_client_host(host)}:{port}/healthz", timeout, part.proc)
        return part

    def start_worker(
        self, name: str = "worker", concurrency: int = 1, stop_timeout: float = 90.0, pool: str | None = None
    ) -> Part:
        """``mar worker``: one Celery worker (one job at a time by default) of ``pool`` (None: the
        environment's ``MAR_WORKER_POOL``, else the first pool)."""
        argv = [*MAR, "worker", "--concurrency", str(concurrency)]
        if pool is not None:
            argv += ["--pool", pool]
        return self._start(name, argv, stop_timeout)

    def start_reaper(self, interval: float = 5.0, stale_after: float | None = None) -> Part:
        """``mar reaper``: re-queue expired leases, re-nudge lost messages."""
        argv = [*MAR, "reaper", "--interval", str(interval)]
        if stale_after is not None:
            argv += ["--stale-after", str(stale_after)]
        return self._start("reaper", argv, stop_timeout=10)

    def dead_parts(self) -> list[Part]:
        return [p for p in self.parts if p.proc.poll() is not None]

    def kill(self, part: Part) -> None:
        """SIGKILL a part's whole process group (the tests' ``kill -9``)."""
        signal_group(part.pid, 9)
        part.proc.wait(timeout=10)
        self.parts.remove(part)

    def stop_part(self, part: Part) -> int | None:
        rc = stop_process_group(part.proc, grace=part.stop_timeout)
        if part in self.parts:
            self.parts.remove(part)
        return rc

    def stop(self) -> None:
        """Stop every part: API and reaper first, workers last (they checkpoint running jobs)."""
        order = sorted(self.parts, key=lambda p: p.name.startswith("worker"))
        for part in order:
            if part.proc.poll() is None:
                logger.info("stopping %s (pid %d)", part.name, part.pid)
            try:
                self.stop_part(part)
            except Exception:
                logger.exception("could not stop %s", part.name)

    def __enter__(self) -> Stack:  # noqa: PYI034 - a plain class, not meant to be subclassed
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def embedded_env(state_dir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of an embedded stack: state under ``state_dir``, SQLite and the
    ``filesystem://`` transport unless ``DATABASE_URL`` / ``BROKER_URL`` say otherwise, and
    ``MAR_TRAINING_THREADS`` = cores - 1 unless set."""
    env = dict(os.environ if base is None else base)
    env["MAR_STATE_DIR"] = str(Path(state_dir).expanduser().resolve())
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("MAR_TRAINING_THREADS", str(embedded_training_threads()))
    return env


def embedded_training_threads() -> int:
    """cores - 1 (at least 1): a laptop's other work costs the training step little (a step beside
    one busy process: 0.98x its idle time, against 3.8x with torch's one thread per core; idle
    it is 1.66x slower on 2 cores, less with more cores: BENCHMARKS.md, "contention")."""
    return max(1, (os.cpu_count() or 1) - 1)
