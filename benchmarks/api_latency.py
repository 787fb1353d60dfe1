"""API latency of ``POST /jobs`` and ``GET /jobs/{id}/metrics`` under concurrent clients, on
the embedded default (SQLite) and on PostgreSQL.

The server runs in subprocesses (``benchmarks.api_server``: uvicorn with one or more worker
processes, the Celery nudge stubbed), so clients and server do not share a GIL. Each server
config runs every scenario: ``POST /jobs`` closed-loop at each client count and paced (a fixed
offered rate), ``GET /jobs/{id}/metrics`` in both formats and as a conditional poll. Before it starts, this process migrates
the database, creates an API key (``keys_repo``) and a job holding ``metric_points`` metric
points (``metrics_repo.append_metrics``: 10 series). PostgreSQL (127.0.0.1:5432, database
``test``, trust auth) is used in a fresh schema that is dropped afterwards; when it cannot be
reached that backend is reported as skipped.
"""

from __future__ import annotations

import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from api.db import jobs_repo, keys_repo, metrics_repo
from api.db.probe import find_postgres as probe
from api.db.session import init_db, make_engine, make_session_factory, session_scope
from mar_core.spec import JobSpec
from mar_core.synth import generate_synthetic

log = logging.getLogger(__name__)

PG_HOST, PG_PORT, PG_DB = "127.0.0.1", 5432, "test"
PG_USERS = ("postgres", "root")
SERIES = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_postgres() -> tuple[str | None, str]:
    """A reachable PostgreSQL URL (trying the users in turn), or None and why."""

    return probe(PG_HOST, PG_PORT, PG_DB, PG_USERS)


@contextmanager
def _pg_schema(url: str) -> Iterator[str]:
    """A fresh schema; yields the URL whose connections use it; drops it at the end."""

    schema = f"mar_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _seed_database(url: str, metric_points: int) -> tuple[str, str]:
    """Migrate, create an API key and a job with ``metric_points`` points; (key, job id)."""

    engine = make_engine(url)
    try:
        init_db(engine)
        factory = make_session_factory(engine)
        with session_scope(factory) as s:
            _, key = keys_repo.create_api_key(s, "bench")
            job = jobs_repo.create_job(s, JobSpec.model_validate(_job_body()))
            job_id = job.id
        steps = max(1, metric_points // SERIES)
        with session_scope(factory) as s:
            for step in range(steps):
                metrics_repo.append_metrics(
                    s, job_id, step, {f"loss/s{k}": 1.0 / (1 + step + k) for k in range(SERIES)}
                )
    finally:
        engine.dispose()
    return key, job_id


def _job_body() -> dict[str, Any]:
    return {"kind": "train", "dataset": {"format": "coco", "path": "coco"}, "train": {"iterations": 5}}


def _make_data_root(root: Path) -> None:
    """A tiny valid dataset: the API checks the data of every job it accepts."""
    generate_synthetic(root / "coco", seed=0, num_train=2, num_val=2, image_size=32, overwrite=True)


@contextmanager
def _server(state: Path, url: str, data_root: Path, workers: int, cache_bytes: int) -> Iterator[str]:
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.api_server",
        "--state",
        str(state),
        "--database-url",
        url,
        "--data-root",
        str(data_root),
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--metrics-cache-bytes",
        str(cache_bytes),
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"API server exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise RuntimeError("API server did not start within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _stats(latencies: list[float], wall: float, errors: int) -> dict[str, Any]:
    ms = sorted(x * 1000 for x in latencies)

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, round(p / 100 * (len(ms) - 1)))], 2) if ms else float("nan")

    return {
        "requests": len(latencies) + errors,
        "errors": errors,
        "mean_ms": round(statistics.fmean(ms), 2) if ms else None,
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "max_ms": round(ms[-1], 2) if ms else None,
        "throughput_rps": round(len(latencies) / wall, 1) if wall > 0 else None,
    }


def _load(
    base: str,
    key: str,
    method: str,
    path: str,
    body: Any,
    requests: int,
    clients: int,
    expect: int,
    headers: dict[str, str] | None = None,
    interval_s: float | None = None,
) -> dict[str, Any]:
    """``requests`` requests split over ``clients`` threads, each with its own connection.
    Closed loop (each client sends its next request when the last one is answered), or paced:
    each client starts a request every ``interval_s`` (clients offset evenly), so the offered
    rate is ``clients / interval_s`` whatever the latency. A paced client opens its connection
    first (``GET /healthz``, its latency reported apart as ``connect``), as a client that keeps
    its connection (the SDK) does once: 50 clients opening theirs in the first second would
    otherwise put the start-up of 50 threads and connections in the p99 of 200 requests."""

    headers = {"Authorization": f"Bearer {key}", **(headers or {})}
    per_client = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
    t0 = time.perf_counter() + (0.2 if interval_s is None else 0.2 + interval_s)
    connect: list[float] = []

    def client(i: int) -> tuple[list[float], int]:
        lat, errors = [], 0
        with httpx.Client(base_url=base, headers=headers, timeout=60) as c:
            if interval_s is not None:
                time.sleep(i / clients * interval_s)  # the connections opened evenly too
                start = time.perf_counter()
                c.get("/healthz").raise_for_status()
                connect.append(time.perf_counter() - start)
            for k in range(per_client[i]):
                if interval_s is not None:
                    due = t0 + (k + i / clients) * interval_s
                    time.sleep(max(0.0, due - time.perf_counter()))
                start = time.perf_counter()
                r = c.request(method, path, json=body)
                elapsed = time.perf_counter() - start
                if r.status_code == expect:
                    lat.append(elapsed)
                else:
                    errors += 1
                    log.warning("%s %s -> %d: %s", method, path, r.status_code, r.text[:200])
        return lat, errors

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(client, range(clients)))
    wall = time.perf_counter() - (start if interval_s is None else t0)  # paced: from the first due time
    out = _stats([x for lat, _ in results for x in lat], wall, sum(e for _, e in results))
    if interval_s is not None:
        out["offered_rps"] = round(clients / interval_s, 1)
        out["connect"] = _stats(connect, wall, 0)
    return out


@dataclass(frozen=True)
class ServerConfig:
    """One way of running the API: its uvicorn worker processes and metrics cache."""

    workers: int
    cache_bytes: int

    @property
    def label(self) -> str:
        cache = "metrics cache off" if self.cache_bytes == 0 else "metrics cache on"
        return f"{self.workers} process{'es' if self.workers > 1 else ''}, {cache}"


def _scenarios(job_id: str, metric_points: int, etag: str) -> list[tuple[str, str, str, Any, int, dict]]:
    """``(label, method, path, body, expected status, headers)`` of each measured request."""
    metrics = f"/jobs/{job_id}/metrics"
    return [
        ("POST /jobs", "POST", "/jobs", _job_body(), 201, {}),
        (f"GET metrics ({metric_points} points)", "GET", metrics, None, 200, {}),
        (
            f"GET metrics ({metric_points} points, format=columns)",
            "GET",
            metrics + "?format=columns",
            None,
            200,
            {},
        ),
        ("GET metrics, unchanged (If-None-Match: 304)", "GET", metrics, None, 304, {"If-None-Match": etag}),
    ]


def measure_backend(
    url: str | None,
    *,
    post_requests: int,
    get_requests: int,
    clients: tuple[int, ...],
    get_clients: tuple[int, ...],
    metric_points: int,
    configs: tuple[ServerConfig, ...],
    paced: tuple[int, float] | None,
) -> dict[str, Any]:
    """Latency figures of each scenario at each concurrency level, for each server config, on
    the database ``url`` (``None``: a fresh SQLite file, the embedded default). ``paced``:
    ``(clients, interval_s)`` of an extra paced ``POST /jobs`` load."""
    with tempfile.TemporaryDirectory(prefix="mar-api-bench-") as tmp:
        state, data_root = Path(tmp) / "state", Path(tmp) / "data"
        _make_data_root(data_root)
        db_url = url or f"sqlite:///{state / 'mar.db'}"
        key, job_id = _seed_database(db_url, metric_points)
        out: dict[str, Any] = {"metric_points": metric_points, "runs": []}
        for cfg in configs:
            with _server(state, db_url, data_root, cfg.workers, cfg.cache_bytes) as base:
                metrics = f"/jobs/{job_id}/metrics"
                etag = httpx.get(base + metrics, headers={"Authorization": f"Bearer {key}"}).headers["ETag"]
                for label, method, path, body, expect, headers in _scenarios(job_id, metric_points, etag):
                    is_post = method == "POST"
                    _load(
                        base, key, method, path, body, 2 * cfg.workers, cfg.workers, expect, headers
                    )  # warm-up
                    for n in clients if is_post else get_clients:
                        requests = max(n, post_requests if is_post else get_requests)
                        run = _load(base, key, method, path, body, requests, n, expect, headers)
                        out["runs"].append({"server": cfg.label, "endpoint": label, "clients": n, **run})
                if paced is not None:
                    n, interval = paced
                    run = _load(
                        base, key, "POST", "/jobs", _job_body(), max(n, post_requests), n, 201, None, interval
                    )
                    label = f"POST /jobs, paced ({n} clients, {run['offered_rps']} req/s offered)"
                    out["runs"].append({"server": cfg.label, "endpoint": label, "clients": n, **run})
        return out


def api_latency(
    *,
    post_requests: int = 200,
    get_requests: int = 40,
    clients: tuple[int, ...] = (1, 8, 50),
    get_clients: tuple[int, ...] = (1, 8),
    metric_points: int = 10_000,
    configs: tuple[tuple[int, int], ...] = ((1, 0), (2, 64 * 1024**2)),
    paced: tuple[int, float] | None = (50, 2.0),
    postgres: bool = True,
) -> dict[str, Any]:
    """``{"sqlite": {...}, "postgresql": {...} | {"skipped": why}}``; ``configs``:
    ``(uvicorn workers, metrics cache bytes)`` of each server run."""
    kw = {
        "post_requests": post_requests,
        "get_requests": get_requests,
        "clients": tuple(clients),
        "get_clients": tuple(get_clients),
        "metric_points": metric_points,
        "configs": tuple(ServerConfig(w, c) for w, c in configs),
        "paced": tuple(paced) if paced else None,
    }
    results: dict[str, Any] = {"sqlite": measure_backend(None, **kw)}
    if not postgres:
        results["postgresql"] = {"skipped": "disabled"}
        return results
    url, why = find_postgres()
    if url is None:
        results["postgresql"] = {"skipped": f"unreachable at {PG_HOST}:{PG_PORT}/{PG_DB}: {why}"}
        return results
    with _pg_schema(url) as schema_url:
        results["postgresql"] = measure_backend(schema_url, **kw)
    return results
