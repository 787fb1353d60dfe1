"""The API for the latency benchmark, in its own process: ``create_app(settings)`` served by
uvicorn on 127.0.0.1, with the Celery nudge stubbed (no broker, no worker: a submitted job only
becomes a queued row).

    python -m benchmarks.api_server --state DIR --database-url URL --data-root DIR --port N
"""

from __future__ import annotations

import argparse
import logging

import uvicorn

from api.main import create_app
from api.settings import Settings


def main(argv: list[str] | None = None) -> None:

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--state", required=True)
    p.add_argument("--database-url", required=True)
    p.add_argument("--data-root", required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    settings = Settings(state_dir=args.state, database_url=args.database_url, data_roots=[args.data_root])
    app = create_app(settings)
    app.state.nudge = lambda job_id: True  # latency of the API and its database only
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
