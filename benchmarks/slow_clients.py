"""``mar bench slow-clients``: how ``mar api`` holds up while slow clients hold connections
(issue 33): ``/healthz`` latency with none, then while 300 unauthenticated connections trickle
(half stop inside their headers, half send a body shorter than their ``Content-Length``), and
how long the server takes to close them (``api/http_server.py``'s header and body deadlines).

The server is the real command (``mar api``, a subprocess, SQLite in a temporary state folder);
this process only opens the sockets (which then sit idle) and probes ``/healthz`` over a new
connection each time, as a load balancer does. The result goes to
``results/slow-clients-<UTC time>.json``; ``mar bench report`` prints the newest.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from api.settings import Settings
from benchmarks.machine import machine_info
from benchmarks.markdown import newest_result_section, table
from benchmarks.store import REPO_ROOT
from mar_core.atomic import atomic_write_json

PARTIAL_HEADERS = b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: appl"
SHORT_BODY = (
    b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _probe(url: str, seconds: float, interval: float = 0.02) -> tuple[list[float], int]:
    """``/healthz`` over a new connection every ``interval`` for ``seconds``: (latencies, failures)."""
    latencies, failures = [], 0
    end = time.monotonic() + seconds
    fresh = httpx.Limits(max_keepalive_connections=0)  # a new TCP connection per probe
    with httpx.Client(base_url=url, timeout=5, limits=fresh) as http:
        while time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                ok = http.get("/healthz").status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - t0)
            failures += not ok
            time.sleep(interval)
    return latencies, failures


def _summary(latencies: list[float], failures: int) -> dict[str, Any]:
    ms = sorted(x * 1000 for x in latencies)
    return {
        "probes": len(ms),
        "failures": failures,
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(statistics.quantiles(ms, n=100, method="inclusive")[98], 2),
        "max_ms": round(ms[-1], 2),
    }


def _watch(socks: dict[socket.socket, str], opened: float, until: float) -> dict[str, list[float]]:
    """Seconds from ``opened`` until the server closed each socket, by kind, until ``until``."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    closed: dict[str, list[float]] = {"headers": [], "body": []}
    left = set(socks)
    while left and time.monotonic() < until:
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            try:
                data = s.recv(4096)  # type: ignore[union-attr]
            except ConnectionResetError:
                data = b""
            if not data:
                sel.unregister(s)
                left.discard(s)  # type: ignore[arg-type]
                closed[socks[s]].append(time.monotonic() - opened)  # type: ignore[index]
    sel.close()
    return closed


def run_slow_clients(
    results: Path,
    connections: int = 300,
    header_s: float | None = None,
    body_s: float | None = None,
    command: str = "",
) -> tuple[Path, dict[str, Any]]:
    """Start ``mar api``, measure, stop it, write the result; returns ``(path, result)``."""
    defaults = Settings.model_fields
    header_s = header_s or defaults["http_header_timeout_seconds"].default
    body_s = body_s or defaults["http_body_timeout_seconds"].default
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per probe otherwise
    started = dt.datetime.now(dt.timezone.utc)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as state:
        env = {
            **os.environ,
            "MAR_STATE_DIR": state,
            "MAR_HTTP_HEADER_TIMEOUT": str(header_s),
            "MAR_HTTP_BODY_TIMEOUT": str(body_s),
        }
        env.pop("DATABASE_URL", None)
        server = subprocess.Popen(
            [sys.executable, "-m", "mar_cli.main", "api", "--port", str(port), "--log-level", "warning"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("mar api did not start")
                time.sleep(0.2)
            idle = _summary(*_probe(url, 5.0))
            opened = time.monotonic()
            socks: dict[socket.socket, str] = {}
            for i in range(connections):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(PARTIAL_HEADERS if i % 2 else SHORT_BODY)
                s.setblocking(False)
                socks[s] = "headers" if i % 2 else "body"
            open_s = time.monotonic() - opened
            window = max(header_s, body_s) + 5
            closed: dict[str, list[float]] = {}
            watcher = threading.Thread(
                target=lambda: closed.update(_watch(socks, opened, opened + window)), daemon=True
            )
            watcher.start()
            busy = _summary(*_probe(url, max(min(header_s, body_s) - open_s, 1.0)))
            watcher.join(window + 5)
            for s in socks:
                s.close()
        finally:
            server.terminate()
            server.wait(30)
    kinds = {"headers": header_s, "body": body_s}
    result = {
        "command": command,
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "connections": connections,
        "open_seconds": round(open_s, 2),
        "idle": idle,
        "busy": busy,
        "closed": {
            kind: {
                "deadline_s": kinds[kind],
                "count": len(closed.get(kind, [])),
                "of": connections // 2 + (connections % 2 if kind == "body" else 0),
                "last_s": round(max(closed.get(kind, [0.0])), 2),
            }
            for kind in kinds
        },
    }
    out = Path(results) / f"slow-clients-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    atomic_write_json(out, result)
    return out, result


def format_slow_clients(result: dict[str, Any]) -> list[str]:
    """The result as Markdown lines."""
    rows = [
        [
            label,
            str(r["probes"]),
            str(r["failures"]),
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            f"{r['max_ms']:.1f}",
        ]
        for label, r in (
            ("no slow clients", result["idle"]),
            (f"{result['connections']} slow clients", result["busy"]),
        )
    ]
    closed = result["closed"]
    return [
        f"`mar api` (SQLite) with {result['connections']} unauthenticated connections opened in "
        f"{result['open_seconds']} s: half stop inside their headers, half send 1 of 5,000 declared body "
        "bytes. `/healthz` probed over a new connection every 20 ms:",
        "",
        *table(["while", "probes", "failed", "p50 (ms)", "p99 (ms)", "max (ms)"], rows),
        "",
        *(
            f"- {kind}: {c['count']} of {c['of']} closed by the server, the last {c['last_s']} s after "
            f"they opened (deadline {c['deadline_s']:g} s)"
            for kind, c in closed.items()
        ),
    ]


def slow_clients_section(results: Path) -> list[str]:
    """BENCHMARKS.md's section: the newest ``slow-clients-*.json`` in ``results``."""
    return newest_result_section(results, "slow-clients", "Slow clients", format_slow_clients)
