"""A private ``redis-server`` on a port of its own, with no persistence: the soak's broker.

Killing it loses every message it held (``--save "" --appendonly no``), which is what a broker
restart does to the service's nudges; ``restart`` starts a fresh server on the same port, so the
workers, the API and the reaper reconnect to the URL they were given.
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from mar_core.errors import MarError
from worker.procs import stop_process_group

logger = logging.getLogger(__name__)


class RedisServerError(MarError):
    """redis-server is missing or did not start."""

    code = "redis_server_failed"


class RedisServer:
    """``redis-server --port PORT --save "" --appendonly no`` as a child process."""

    def __init__(self, port: int, log_path: Path, host: str = "127.0.0.1"):
        self.host, self.port, self.log_path = host, port, log_path
        self.proc: subprocess.Popen | None = None
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RedisServerError("redis-server is not on PATH (apt-get install redis-server)")

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RedisServerError(
                    f"redis-server exited with {self.proc.returncode} (see {self.log_path})"
                )
            if self._answers():
                logger.info("redis-server pid %d on port %d", self.proc.pid, self.port)
                return
            time.sleep(0.1)
        raise RedisServerError(f"redis-server did not answer on port {self.port} within {timeout:.0f} s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: every message in it is lost."""
        if self.proc is not None:
            stop_process_group(self.proc, grace=0, sig=signal.SIGKILL)
            self.proc = None

    def restart(self, down_seconds: float) -> None:
        """Kill it, stay down ``down_seconds``, start a fresh one on the same port."""
        self.kill()
        time.sleep(down_seconds)
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc, grace=5)
            self.proc = None
