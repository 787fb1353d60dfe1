"""Bearer API keys: 401 without, with an unknown, or with a revoked key, on every route but health."""

from __future__ import annotations

import pytest

from api.db import keys_repo
from api.db.session import session_scope

PROTECTED = [
    ("get", "/jobs"),
    ("post", "/jobs"),
    ("get", "/jobs/x"),
    ("post", "/jobs/x/cancel"),
    ("get", "/jobs/x/metrics"),
    ("get", "/jobs/x/events"),
    ("get", "/jobs/x/events/stream"),
    ("get", "/jobs/x/artifacts"),
    ("get", "/jobs/x/artifacts/model.pt"),
    ("post", "/checkpoints"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_no_key_is_401(client, method, path):
    r = client.request(method.upper(), path)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["detail"][0]["code"] == "unauthorized"


@pytest.mark.parametrize("header", ["Bearer mar_notakey", "Basic dXNlcjpwYXNz", "Bearer ", "mar_notakey"])
def test_bad_key_is_401(client, api_key, header):
    assert client.get("/jobs", headers={"Authorization": header}).status_code == 401


def test_revoked_key_is_401(client, db, auth):
    assert client.get("/jobs", headers=auth).status_code == 200
    with session_scope(db) as s:
        (row,) = keys_repo.list_api_keys(s)
        assert keys_repo.revoke_api_key(s, row.id)
    assert client.get("/jobs", headers=auth).status_code == 401


def test_health_needs_no_key(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/docs").status_code == 200
    assert "/jobs" in client.get("/openapi.json").json()["paths"]
