"""Fixtures of the integration tests: a whole service per stack flavour, a tiny dataset.

``stack`` is session-scoped and parametrised: ``embedded`` (SQLite + ``filesystem://``) and
``postgres-redis`` (PostgreSQL 127.0.0.1:5432 database ``test`` in a fresh schema, Redis
127.0.0.1:6379 in db ``MAR_IT_REDIS_DB`` (default 13) with a queue name of its own). When
PostgreSQL or Redis is unreachable the second flavour fails with ``CI=true`` and is skipped
otherwise. Every process is stopped (process groups killed) in the finalizer, even when a
test failed.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.service import ServiceStack, base_env
from worker.stack import Stack
from worker.stack_db import PgSchema, prepare_database, settings_from_env

logger = logging.getLogger(__name__)

PG_HOST = os.environ.get("MAR_TEST_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("MAR_TEST_PG_PORT", "5432")
PG_DB = os.environ.get("MAR_TEST_PG_DB", "test")
PG_USERS = ("postgres", "root")
REDIS_HOST = os.environ.get("MAR_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("MAR_TEST_REDIS_PORT", "6379"))
REDIS_DB = int(os.environ.get("MAR_IT_REDIS_DB", "13"))

DATASET = "syn"  # under the data root: 16 train / 8 val images of 64 px, 3 classes


def unavailable(message: str) -> None:
    """Fail under ``CI=true``, skip otherwise."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} -- CI=true requires it", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def it_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("it")


@pytest.fixture(scope="session")
def data_root(it_root: Path) -> Path:
    from mar_core.synth import generate_synthetic

    root = it_root / "data"
    generate_synthetic(root / DATASET, seed=5, num_train=16, num_val=8, image_size=64, num_classes=3)
    return root


@pytest.fixture(scope="session")
def checkpoint_root(it_root: Path) -> Path:
    root = it_root / "checkpoints"
    root.mkdir()
    return root


# ------------------------------------------------------------------------ external services


def _postgres_url() -> str:
    from api.db.probe import find_postgres

    url, why = find_postgres(PG_HOST, PG_PORT, PG_DB, PG_USERS)
    if url is None:
        unavailable(f"PostgreSQL unreachable at {PG_HOST}:{PG_PORT}/{PG_DB} ({why})")
        raise AssertionError("unreachable")
    return url


def _redis_client():
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_connect_timeout=3)
    try:
        client.ping()
    except Exception as e:  # noqa: BLE001
        unavailable(f"Redis unreachable at {REDIS_HOST}:{REDIS_PORT} ({e})")
    return client


# ------------------------------------------------------------------------ the stack


@contextlib.contextmanager
def service_stack(
    flavour: str,
    state: Path,
    data_root: Path,
    checkpoint_root: Path,
    extra_env: dict[str, str] | None = None,
    worker_pools: tuple[str | None, ...] = (None,),
) -> Iterator[ServiceStack]:
    """API + workers (one per entry of ``worker_pools``) + reaper on one stack flavour, stopped
    (and its schema / queue dropped) on exit."""
    env = {**base_env(state, data_root, checkpoint_root), **(extra_env or {})}
    cleanups = []
    if flavour == "postgres-redis":
        pg_url, redis_client = _postgres_url(), _redis_client()  # skip (or fail on CI) first
        settings = settings_from_env(env)
        queues = [settings.pool_queue(p) for p in settings.pools]
        cleanups.append(lambda: _drop_queues(redis_client, queues))
        schema = PgSchema(pg_url)
        cleanups.append(schema.drop)
        env["DATABASE_URL"] = schema.url
        env["BROKER_URL"] = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
    service = ServiceStack(flavour, env, settings_from_env(env), Stack(env, log_dir=state / "logs"))
    try:
        service.api_key = prepare_database(env)
        service.start(worker_pools)
        logger.info("[%s] stack up at %s (state %s)", flavour, service.url, state)
        yield service
    finally:
        service.close()
        for fn in reversed(cleanups):
            try:
                fn()
            except Exception:
                logger.exception("cleanup failed")


@pytest.fixture(scope="session", params=["embedded", "postgres-redis"])
def stack(request, it_root: Path, data_root: Path, checkpoint_root: Path) -> Iterator[ServiceStack]:
    """API + one worker + reaper, running for the whole session on one stack flavour."""
    flavour = request.param
    with service_stack(flavour, it_root / f"state-{flavour}", data_root, checkpoint_root) as service:
        yield service


def _drop_queues(client, queues: list[str]) -> None:
    for queue in queues:
        keys = [queue, f"_kombu.binding.{queue}"]
        keys += [k for k in client.scan_iter(match=f"{queue}\x06*")]  # priority sub-queues
        client.delete(*keys)
    client.close()


@pytest.fixture
def tiny_spec(data_root: Path):
    """A RetinaNet-R18 (FPN 32) spec on the 64 px set: a second or so a step on this CPU."""

    def make(iterations: int = 4, name: str = "it", **train) -> dict:
        return {
            "kind": "train",
            "name": name,
            "dataset": {"path": DATASET},
            "model": {
                "arch": "retinanet",
                "backbone": "resnet18",
                "fpn_channels": 32,
                "min_size": 64,
                "max_size": 64,
                "anchor_scale": 0.5,
            },
            "train": {
                "iterations": iterations,
                "batch_size": 2,
                "lr": 0.01,
                "warmup_iters": 1,
                "amp": False,
                "log_every": 1,
                "checkpoint_every": max(1, iterations),
                "eval_max_images": 4,
                **train,
            },
            "resources": {"device": "cpu"},
            "seed": 3,
        }

    return make
