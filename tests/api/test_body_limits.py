"""Bodies are refused from their size before authentication or a route reads them, uploads
check the key first (issue 17, item 4), and an upload answers a path relative to its root."""

from __future__ import annotations

import json

import anyio

from tests.api.checkpoint_writers import tiny_checkpoint
from tests.api.conftest import distill_spec, error_params


def _asgi(app, method: str, path: str, headers: dict[str, str], chunks: list[bytes]) -> tuple[int, dict, int]:
    """Call the app without a client; returns (status, JSON body, chunks the app received)."""
    read = 0
    sent: list[dict] = []
    pending = list(chunks)

    async def receive() -> dict:
        nonlocal read
        read += 1
        body = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "server": ("testserver", 80), "client": ("test", 1),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip
    anyio.run(app, scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), read


def test_a_large_body_without_a_key_is_refused_unread(app, client):
    big = str(150 * 1024**2)
    status, body, read = _asgi(
        app, "POST", "/jobs", {"content-length": big, "content-type": "application/json"}, [b"{}"]
    )
    assert (status, read) == (413, 0) and body["detail"][0]["param"] == "body"
    upload = {"content-length": big, "content-type": "multipart/form-data; boundary=x"}
    status, body, read = _asgi(app, "POST", "/checkpoints", upload, [b"--x--"])
    assert (status, read) == (401, 0)


def test_a_body_without_a_length_is_counted(app, client, auth):
    app.state.settings.max_body_bytes = 1000
    chunks = [b'{"kind": "train", "name": "' + b"x" * 600, b"y" * 600 + b'"}']
    status, body, _ = _asgi(app, "POST", "/jobs", {**auth, "content-type": "application/json"}, chunks)
    assert status == 413 and body["detail"][0]["param"] == "body"


def test_a_checkpoint_upload_checks_the_key_and_length_first(client, app, auth):
    upload = {"content-length": str(3 * 1024**3), "content-type": "multipart/form-data; boundary=x"}
    status, _, read = _asgi(app, "POST", "/checkpoints", {**auth, **upload}, [b"--x--"])
    assert (status, read) == (413, 0)

    def chunks():
        yield b"--x--"

    r = client.post("/checkpoints", content=chunks(), headers={**auth, "Content-Type": "multipart/form-data"})
    assert r.status_code == 411 and error_params(r) == ["Content-Length"]


def test_the_upload_path_is_relative_and_usable_as_teacher(client, auth, settings):
    r = client.post("/checkpoints", files={"file": ("teacher.pt", tiny_checkpoint())}, headers=auth)
    assert r.status_code == 201, r.text
    path = r.json()["path"]
    assert path.startswith("uploads/") and str(settings.state_dir) not in r.text
    assert (settings.checkpoint_root / path).read_bytes() == tiny_checkpoint()
    job = client.post("/jobs", json=distill_spec(path), headers=auth)
    assert job.status_code == 201, job.text


def test_the_default_upload_limit_is_2_gib():
    from api.settings import Settings

    assert Settings.model_fields["max_upload_bytes"].default == 2 * 1024**3
