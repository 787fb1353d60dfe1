"""Several API replicas start at once (docker compose --scale api=N): ``init_db`` migrates under a
PostgreSQL advisory lock, so one replica migrates and the others wait, then find the schema at head."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from api.db.session import MIGRATION_LOCK_KEY, init_db, make_engine
from tests.api.conftest import _find_postgres

REPLICAS = 4
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    url, why = _find_postgres()
    if url is None:
        msg = f"PostgreSQL unreachable ({why})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " -- CI=true requires it", pytrace=False)
        pytest.skip(msg)
    schema = f"mar_lock_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield url, schema
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _engine(url: str, schema: str):
    return make_engine(url, connect_args={"options": f"-csearch_path={schema}"})


def test_init_db_waits_for_the_migration_lock(pg_schema):
    url, schema = pg_schema
    holder = _engine(url, schema)
    done = threading.Event()
    errors: list[BaseException] = []

    def migrate() -> None:
        engine = _engine(url, schema)
        try:
            init_db(engine)
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)
        finally:
            engine.dispose()
            done.set()

    with holder.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        t = threading.Thread(target=migrate)
        t.start()
        assert not done.wait(2.0), "init_db migrated while another replica held the migration lock"
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
        conn.commit()
    assert done.wait(60), "init_db did not finish once the lock was free"
    t.join()
    holder.dispose()
    assert not errors, errors


_REPLICA = """
import sys
from api.db.session import init_db, make_engine
init_db(make_engine(sys.argv[1], connect_args={"options": f"-csearch_path={sys.argv[2]}"}))
"""


def test_replicas_migrating_at_once_all_start(pg_schema):
    """Separate processes, as API containers are: each runs init_db on the same empty schema."""
    url, schema = pg_schema
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _REPLICA, url, schema],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(REPLICAS)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    failed = [out for p, out in zip(procs, outputs) if p.returncode != 0]
    assert not failed, f"{len(failed)} of {REPLICAS} replicas failed to migrate:\n{failed[0][-3000:]}"
    engine = _engine(url, schema)
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    engine.dispose()
    assert len(versions) == 1, versions
