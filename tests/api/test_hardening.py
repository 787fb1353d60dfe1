"""One test per finding of the hardening probe (issue 17) that the fuzz test finds only by chance:
NUL bytes, int64 cursors, an empty Idempotency-Key, non-finite floats, undocumented statuses,
``OPTIONS``, declared content types, and absolute server paths in error messages."""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import error_params, train_spec

INT64_OVERFLOW = str(2**63)


@pytest.mark.parametrize(
    ("where", "param"),
    [
        ("dataset.path", "dataset.path"),
        ("name", "name"),
        ("query", "status"),
        ("cursor", "cursor"),
        ("segment", "path"),
    ],
)
def test_a_nul_byte_anywhere_is_a_422_naming_the_field(client, auth, where, param):
    if where == "dataset.path":
        r = client.post("/jobs", json=train_spec(dataset={"path": "co\x00co"}), headers=auth)
    elif where == "name":
        r = client.post("/jobs", json=train_spec(name="a\x00b"), headers=auth)
    elif where == "query":
        r = client.get("/jobs?status=queued%00", headers=auth)
    elif where == "cursor":
        r = client.get("/jobs?cursor=abc%00", headers=auth)
    else:
        r = client.get("/jobs/abc%00def", headers=auth)
    assert r.status_code == 422, r.text
    assert param in error_params(r)


def _job(client, auth) -> str:
    r = client.post("/jobs", json=train_spec(), headers=auth)
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.parametrize(
    ("path", "headers", "param"),
    [
        ("/jobs/{id}/events?after=" + INT64_OVERFLOW, {}, "after"),
        ("/jobs/{id}/metrics?since=" + INT64_OVERFLOW, {}, "since"),
        ("/jobs/{id}/events/stream?after=" + INT64_OVERFLOW, {}, "after"),
        ("/jobs/{id}/events/stream", {"Last-Event-ID": INT64_OVERFLOW}, "Last-Event-ID"),
    ],
)
def test_cursors_beyond_int64_are_a_422(client, auth, path, headers, param):
    job = _job(client, auth)
    r = client.get(path.replace("{id}", job), headers={**auth, **headers})
    assert r.status_code == 422, r.text
    assert param in error_params(r)


def test_an_empty_idempotency_key_is_refused_and_stores_nothing(client, auth):
    r = client.post("/jobs", json=train_spec(), headers={**auth, "Idempotency-Key": ""})
    assert r.status_code == 422 and error_params(r) == ["Idempotency-Key"]
    assert client.get("/jobs", headers=auth).json()["data"] == []
    assert client.post("/jobs", json=train_spec(), headers=auth).status_code == 201  # nothing stuck


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN", "1e309"])
@pytest.mark.parametrize("field", ["lr", "grad_clip"])
def test_non_finite_floats_are_a_422_naming_the_field(client, auth, field, value):
    body = json.dumps(train_spec()).replace('"iterations": 5', f'"iterations": 5, "{field}": {value}')
    r = client.post("/jobs", content=body, headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert error_params(r) == [f"train.{field}"]


def test_a_status_the_document_does_not_list_is_refused_and_the_document_says_which(client, auth):
    r = client.get("/jobs?status=ok", headers=auth)
    assert r.status_code == 422 and error_params(r) == ["status"]
    params = client.get("/openapi.json").json()["paths"]["/jobs"]["get"]["parameters"]
    status = next(p for p in params if p["name"] == "status")
    assert "ok" not in status["schema"].get("pattern", "ok")  # the pattern refuses it


def test_options_lists_every_method_of_the_path(client, auth):
    r = client.options("/jobs", headers=auth)
    allowed = {m.strip() for m in r.headers.get("allow", "").split(",")}
    assert {"GET", "POST"} <= allowed, r.headers


def test_a_non_json_body_is_a_documented_422(client, auth):
    r = client.post("/jobs", content=b"not json", headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert "422" in client.get("/openapi.json").json()["paths"]["/jobs"]["post"]["responses"]


@pytest.mark.parametrize(
    "body",
    [
        train_spec(dataset={"path": "missing"}),
        train_spec(dataset={"path": "../../outside"}),
        train_spec(kind="distill", teacher={"checkpoint": "missing.pt"}),
        train_spec(kind="distill", teacher={"checkpoint": "/etc/passwd"}),
        train_spec(dataset={"format": "voc", "path": "coco"}),
    ],
    ids=["missing dataset", "dataset outside", "missing checkpoint", "checkpoint outside", "wrong format"],
)
def test_error_messages_never_reveal_absolute_server_paths(client, auth, settings, body):
    r = client.post("/jobs", json=body, headers=auth)
    assert r.status_code == 422, r.text
    for root in (settings.state_dir, *settings.data_roots, settings.checkpoint_root):
        assert str(root) not in r.text, r.text
