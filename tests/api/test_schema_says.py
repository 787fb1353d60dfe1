"""The OpenAPI document says what the server takes (issue 33, item 5): each request the outside
probe found schema-valid yet refused is now either accepted or refused by the document too."""

from __future__ import annotations

import re

import pytest

from tests.api.archive_writers import pack
from tests.api.checkpoint_writers import tiny_checkpoint
from tests.api.conftest import error_params, make_coco, train_spec


def _param(client, path: str, method: str, name: str) -> dict:
    params = client.get("/openapi.json").json()["paths"][path][method]["parameters"]
    return next(p for p in params if p["name"] == name)["schema"]


def _component(client, name: str) -> dict:
    return client.get("/openapi.json").json()["components"]["schemas"][name]


@pytest.mark.parametrize("path", ["/jobs", "/datasets"])
def test_any_cursor_the_document_allows_is_taken(client, auth, path):
    pattern = _param(client, path, "get", "cursor")["pattern"]
    unknown = "1765090000000000.nosuchid"
    assert re.match(pattern, unknown)
    r = client.get(path, params={"cursor": unknown}, headers=auth)
    assert r.status_code == 200 and r.json()["data"] == [], r.text
    assert not re.match(pattern, "abc")  # what the probe sent: now refused by the document too
    assert error_params(client.get(path, params={"cursor": "abc"}, headers=auth)) == ["cursor"]


def test_a_cursor_the_server_hands_out_matches_the_document(client, auth):
    for _ in range(3):
        client.post("/jobs", json=train_spec(), headers=auth)
    page = client.get("/jobs", params={"limit": 2}, headers=auth).json()
    assert re.match(_param(client, "/jobs", "get", "cursor")["pattern"], page["next_cursor"])
    rest = client.get("/jobs", params={"limit": 2, "cursor": page["next_cursor"]}, headers=auth).json()
    assert len(rest["data"]) == 1


def test_no_parameter_is_documented_as_null(client):
    doc = client.get("/openapi.json").json()
    nullable = [
        (path, p["name"])
        for path, item in doc["paths"].items()
        for op in item.values()
        for p in op.get("parameters", ())
        if {"type": "null"} in p["schema"].get("anyOf", ())
    ]
    assert nullable == []
    last_event_id = _param(client, "/jobs/{job_id}/events/stream", "get", "Last-Event-ID")
    assert last_event_id["type"] == "string" and not re.match(last_event_id["pattern"], "null")


@pytest.mark.parametrize("path", ["", "   "])
def test_an_empty_dataset_path_is_refused_by_the_document_too(client, auth, path):
    dataset = _component(client, "DatasetSpec")["properties"]["path"]
    text = next(s for s in dataset["anyOf"] if s.get("type") == "string")
    assert text["minLength"] == 1 and not re.match(text["pattern"], path)
    assert re.match(text["pattern"], "coco") and re.match(text["pattern"], " my data ")
    r = client.post("/jobs", json=train_spec(dataset={"format": "coco", "path": path}), headers=auth)
    assert r.status_code == 422 and error_params(r) == ["dataset.path"], r.text


@pytest.mark.parametrize(
    "url", ["http://0", "http://0/x", "http://example.com:0/", "http://u:p@example.com/"]
)
def test_a_webhook_url_the_guard_refuses_by_its_form_is_refused_by_the_document(client, auth, url):
    pattern = _component(client, "WebhookEndpointIn")["properties"]["url"]["pattern"]
    assert not re.match(pattern, url)
    assert re.match(pattern, "https://hooks.example.com:8443/mar?x=1")
    r = client.post("/webhooks", json={"url": url}, headers=auth)
    assert r.status_code == 422 and error_params(r) == ["url"], r.text


def test_an_upload_is_judged_by_its_content_when_its_name_says_nothing(client, auth, settings, tmp_path):
    """A multipart file's name is outside the document: ``file`` (what a client that only reads
    the document sends) is taken when the content is a checkpoint or an archive."""
    r = client.post("/checkpoints", files={"file": ("file", tiny_checkpoint())}, headers=auth)
    assert r.status_code == 201 and r.json()["path"].endswith(".pt"), r.text
    archive = pack(make_coco(tmp_path / "ds"), tmp_path / "ds.tar.gz", "tar")
    for route in ("/checkpoints", "/datasets"):
        r = client.post(route, files={"file": ("file", b"not an upload of either kind")}, headers=auth)
        assert r.status_code == 422 and error_params(r) == ["file"], r.text
    with open(archive, "rb") as f:
        r = client.post("/datasets", files={"file": ("file", f)}, headers=auth)
    assert r.status_code == 201, r.text
