"""Schemathesis over the whole API as an outside probe sees it (issues 17 and 33): its CLI, every
check (``--checks all``: server errors, the response conformance checks, positive data acceptance,
negative data rejection, ...) and the examples, coverage and fuzzing phases, against the server
``mar api`` runs (uvicorn with ``api.http_server``'s config, in a thread), on SQLite and
PostgreSQL, with a fixed seed and a real job id, dataset id and API key.

The run fails on any 5xx, any response the document does not describe (status, content type,
headers, body), any request the document calls valid that the API refuses, and any it calls
invalid that the API takes.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from api.db import jobs_repo, metrics_repo
from api.db.keys_repo import create_api_key
from api.db.session import session_scope
from api.http_server import server_config
from api.main import create_app
from tests.api.archive_writers import pack
from tests.api.conftest import TABLES, make_coco, train_spec

SEED = 17
EXAMPLES = 10  # per operation in the fuzzing phase; with the coverage phase ~2,600 cases per database

# Bodies whose rules JSON Schema cannot say (the spec's cross-field rules, paths that must exist
# under the roots, archive contents, a webhook host that must resolve to a public address): a
# schema-valid body may still be a 422 there, never a 5xx.
SEMANTIC = ["2xx", "401", "404", "409", "413", "422"]
SEMANTIC_BODIES = ("/jobs", "/datasets", "/checkpoints", "/webhooks")
# A schema-violating request is rejected with any 4xx that says why: 411 (an upload without a
# length) and 413 (a body past the limits) besides schemathesis's own list.
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "411", "413", "415", "422", "428", "429"]


def _config(job_id: str, dataset_id: str) -> str:
    """The schemathesis.toml of the run."""
    lines = [
        "[parameters]",
        f'job_id = "{job_id}"',
        f'dataset_id = "{dataset_id}"',
        "",
        "[checks.negative_data_rejection]",
        f"expected-statuses = {json.dumps(REJECTED)}",
    ]
    for path in SEMANTIC_BODIES:
        lines += [
            "",
            "[[operations]]",
            f'include-path = "{path}"',
            'include-method = "POST"',
            f"checks.positive_data_acceptance.expected-statuses = {json.dumps(SEMANTIC)}",
        ]
    return "\n".join(lines) + "\n"


def _seed(app, factory: sessionmaker, settings) -> tuple[str, str, str]:
    """A key, a job with an artifact and an uploaded dataset; returns (job id, dataset id, key)."""
    with TestClient(app) as client:  # its startup migrates SQLite
        with session_scope(factory) as s:
            _, key = create_api_key(s, "fuzz")
        auth = {"Authorization": f"Bearer {key}"}
        job = client.post("/jobs", json=train_spec(name="fuzzed"), headers=auth).json()
        archive = pack(make_coco(settings.state_dir / "up" / "ds"), settings.state_dir / "ds.zip", "zip")
        with open(archive, "rb") as f:
            ds = client.post("/datasets", files={"file": ("ds.zip", f)}, headers=auth).json()
    model = settings.job_dir(job["id"]) / "model.json"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_text('{"arch": "retinanet"}')
    with session_scope(factory) as s:
        jobs_repo.add_artifact(s, job["id"], "model.json", model)
        metrics_repo.append_metrics(s, job["id"], 1, {"loss/total": 0.5})
    return job["id"], ds["id"], key


@pytest.fixture(params=["sqlite", "postgresql"])
def fuzz_app(request: pytest.FixtureRequest, settings) -> Iterator[Any]:
    """The app on either database, seeded."""
    app = create_app(settings, migrate=request.param == "sqlite")
    if request.param == "postgresql":
        from api.db.session import make_session_factory

        engine = request.getfixturevalue("pg_engine")
        app.state.engine = engine
        app.state.session_factory = make_session_factory(engine)
    app.state.sse_poll_seconds = 0.01
    app.state.sse_keepalive_seconds = 0.2
    ids = _seed(app, app.state.session_factory, settings)
    yield request.param, app, ids
    if request.param == "postgresql":
        with app.state.engine.begin() as conn:
            conn.execute(text("TRUNCATE " + ", ".join(TABLES) + " RESTART IDENTITY CASCADE"))


@pytest.fixture
def served(fuzz_app, settings) -> Iterator[tuple[str, str, tuple[str, str, str]]]:
    """The seeded app served as ``mar api`` serves it; yields (database, base URL, ids)."""
    import uvicorn

    dialect, app, ids = fuzz_app
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(server_config(app, settings, "127.0.0.1", port, "warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield dialect, f"http://127.0.0.1:{port}", ids
    server.should_exit = True
    thread.join(10)


def test_api_under_fuzzing(served, tmp_path: Path):
    dialect, url, (job_id, dataset_id, key) = served
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(job_id, dataset_id))
    cli = Path(sys.executable).parent / "st"
    cmd = [str(cli), "--config-file", str(config), "run", f"{url}/openapi.json"]
    cmd += ["-H", f"Authorization: Bearer {key}", "--checks", "all"]
    cmd += ["--phases", "examples,coverage,fuzzing", "--seed", str(SEED), "--max-examples", str(EXAMPLES)]
    cmd += ["--request-timeout", "20", "--warnings", "off", "--no-color"]
    t0 = time.monotonic()
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    out = run.stdout + run.stderr
    generated = re.search(r"(\d+) generated", out)
    print(f"{dialect}: {generated and generated.group(1)} test cases in {time.monotonic() - t0:.1f} s")
    assert run.returncode == 0, out[-20000:]
    assert generated is not None and int(generated.group(1)) >= 1000, out[-3000:]
