"""GET /healthz and /readyz (database + broker)."""

from __future__ import annotations

import socket

import pytest

from api.main import create_app
from api.settings import Settings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}


def test_readyz_ok_with_filesystem_broker(client):
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_503_names_the_broker(tmp_path):
    from fastapi.testclient import TestClient

    st = Settings(
        state_dir=tmp_path, broker_url=f"redis://127.0.0.1:{_closed_port()}/0", broker_timeout_seconds=1
    )
    with TestClient(create_app(st)) as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    checks = r.json()["checks"]
    assert checks["database"] == "ok" and checks["broker"].startswith("error")


def test_readyz_503_names_the_database(tmp_path):
    from fastapi.testclient import TestClient

    st = Settings(
        state_dir=tmp_path, database_url=f"postgresql+psycopg2://nobody@127.0.0.1:{_closed_port()}/x"
    )
    with TestClient(create_app(st, migrate=False)) as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["database"].startswith("error") and r.json()["checks"]["broker"] == "ok"


def test_readyz_with_real_redis(tmp_path):
    from fastapi.testclient import TestClient

    with socket.socket() as s:
        s.settimeout(0.5)
        if s.connect_ex(("127.0.0.1", 6379)) != 0:
            pytest.skip("no Redis on 127.0.0.1:6379")
    st = Settings(state_dir=tmp_path, broker_url="redis://127.0.0.1:6379/15")
    with TestClient(create_app(st)) as c:
        assert c.get("/readyz").json()["checks"]["broker"] == "ok"
