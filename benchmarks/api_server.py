"""The API for the latency benchmark, in its own processes: ``create_app(settings)`` served by
uvicorn on 127.0.0.1 with ``--workers`` processes, the Celery nudge stubbed (no broker, no
worker: a submitted job only becomes a queued row).

    python -m benchmarks.api_server --state DIR --database-url URL --data-root DIR --port N
        [--workers W] [--metrics-cache-bytes B]
"""

from __future__ import annotations

import argparse
import logging
import os
import socket

import uvicorn
from fastapi import FastAPI

from api.main import create_app
from api.settings import Settings

ENV = "MAR_BENCH_SERVER"  # state|database url|data root|metrics cache bytes, for each worker process


def app_factory() -> FastAPI:
    """The app each uvicorn worker process builds (settings from ``$MAR_BENCH_SERVER``)."""
    state, url, data_root, cache = os.environ[ENV].split("|")
    settings = Settings(
        state_dir=state, database_url=url, data_roots=[data_root], metrics_cache_bytes=int(cache)
    )
    app = create_app(settings)
    app.state.nudge = lambda job_id, pool=None: True  # latency of the API and its database only
    return app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--state", required=True)
    p.add_argument("--database-url", required=True)
    p.add_argument("--data-root", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument(
        "--metrics-cache-bytes", type=int, default=Settings.model_fields["metrics_cache_bytes"].default
    )
    args = p.parse_args(argv)
    os.environ[ENV] = "|".join([args.state, args.database_url, args.data_root, str(args.metrics_cache_bytes)])
    logging.basicConfig(level=logging.WARNING)
    # The listening socket is made here with TCP_NODELAY, which the connections it accepts inherit:
    # uvicorn's worker processes serve connections without it, and a response written in two
    # parts then waits for the client's delayed ACK (+40 ms per POST, measured).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.set_inheritable(True)
    uvicorn.run(
        "benchmarks.api_server:app_factory",
        factory=True,
        fd=sock.fileno(),
        workers=args.workers,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
