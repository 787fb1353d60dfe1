"""Schemathesis over the whole API, in process, on SQLite and PostgreSQL (issue 17, item 2).

Every operation of the OpenAPI document, a fixed seed, positive and negative data, with a real
job id, dataset id, artifact name and API key fed in: the run fails on any 5xx, any response the
document does not describe (status, content type, headers, body), and any request the document
calls valid that the API refuses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from fastapi.testclient import TestClient
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from api.db import jobs_repo
from api.db.keys_repo import create_api_key
from api.db.session import session_scope
from api.main import create_app
from tests.api.archive_writers import pack
from tests.api.conftest import TABLES, make_coco, train_spec

log = logging.getLogger(__name__)

SEED = 17
EXAMPLES = 30  # per operation and phase: ~1,300 requests in all (>= 1,000 asserted)


# Bodies whose rules JSON Schema cannot say (the spec's cross-field rules, paths that must exist
# under the roots, archive contents): a schema-valid body may still be a 422 there, never a 5xx.
SEMANTIC = ["2xx", "401", "404", "409", "413", "422"]


def _config(job_id: str, dataset_id: str, key: str) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": f"Bearer {key}"},
            "generation": {"max-examples": EXAMPLES, "mode": "all"},
            "phases": {"stateful": {"enabled": False}},
            "parameters": {"job_id": job_id, "dataset_id": dataset_id},
            "operations": [
                {
                    "include-path": path,
                    "include-method": "POST",
                    "checks": {"positive_data_acceptance": {"expected-statuses": SEMANTIC}},
                }
                for path in ("/jobs", "/datasets", "/checkpoints")
            ],
        }
    )


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
        jobs_repo.append_metrics(s, job["id"], 1, {"loss/total": 0.5})
    return job["id"], ds["id"], key


@pytest.fixture(params=["sqlite", "postgresql"])
def fuzz_app(request: pytest.FixtureRequest, settings) -> Iterator[Any]:
    """The app on either database, seeded; the schema is loaded from its own /openapi.json."""
    app = create_app(settings, migrate=request.param == "sqlite")
    if request.param == "postgresql":
        from api.db.session import make_session_factory

        engine = request.getfixturevalue("pg_engine")
        app.state.engine = engine
        app.state.session_factory = make_session_factory(engine)
    app.state.sse_poll_seconds = 0.01
    ids = _seed(app, app.state.session_factory, settings)
    yield request.param, app, ids
    if request.param == "postgresql":
        with app.state.engine.begin() as conn:
            conn.execute(text("TRUNCATE " + ", ".join(TABLES) + " RESTART IDENTITY CASCADE"))


def _fuzz(schema, mode: GenerationMode, failures: list[str]) -> int:
    """Run every operation with ``EXAMPLES`` cases of ``mode``; returns the number of requests."""
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @hypothesis.given(operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        def run(case) -> None:
            nonlocal sent
            sent += 1
            try:
                case.call_and_validate()
            except (Exception, FailureGroup) as e:  # noqa: BLE001 - collect all, then fail once
                failures.append(f"{case.operation.label} ({mode}): {str(e)[:1500]}")

        try:
            run()
        except hypothesis.errors.Unsatisfiable:  # nothing negative to send (no parameters, no body)
            log.info("%s: no %s case", operation.label, mode)
    return sent


def test_api_under_fuzzing(fuzz_app):
    dialect, app, (job_id, dataset_id, key) = fuzz_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=_config(job_id, dataset_id, key))
    failures: list[str] = []
    t0 = time.monotonic()
    sent = sum(_fuzz(schema, mode, failures) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE))
    log.info("%s: %d requests in %.1f s, %d failures", dialect, sent, time.monotonic() - t0, len(failures))
    print(f"{dialect}: {sent} requests in {time.monotonic() - t0:.1f} s")
    assert not failures, "\n\n".join(failures)
    assert sent >= 1000
