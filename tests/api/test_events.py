"""GET /jobs/{id}/events and the Server-Sent Events stream (ids, Last-Event-ID resume, end)."""

from __future__ import annotations

import json
import threading
import time

from api.db import claims_repo, jobs_repo
from api.db.session import session_scope
from tests.api.conftest import error_params, train_spec


def _parse_sse(text: str) -> list[dict]:
    frames = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
        if "data" in fields:  # live progress frames have no id (they are not stored)
            frames.append(
                {
                    "id": int(fields["id"]) if "id" in fields else None,
                    "event": fields["event"],
                    "data": json.loads(fields["data"]),
                }
            )
    return frames


def _finished_job(client, auth, db) -> str:
    job_id = client.post("/jobs", json=train_spec(), headers=auth).json()["id"]
    with session_scope(db) as s:
        claims_repo.claim_job(s, job_id, "w1", 60)
        claims_repo.mark_running(s, job_id, "w1")
        jobs_repo.set_phase(s, job_id, "train")
        jobs_repo.set_progress(s, job_id, 5, 5)
        claims_repo.finish_job(s, job_id, "w1", "succeeded")
    return job_id


def test_list_events_and_after(client, auth, db):
    job_id = _finished_job(client, auth, db)
    events = client.get(f"/jobs/{job_id}/events", headers=auth).json()
    assert [e["type"] for e in events] == ["status", "status", "status", "phase", "progress", "status"]
    assert events[-1]["data"]["status"] == "succeeded"
    later = client.get(f"/jobs/{job_id}/events", params={"after": events[2]["id"]}, headers=auth).json()
    assert [e["id"] for e in later] == [e["id"] for e in events[3:]]


def test_stream_of_a_finished_job_sends_all_and_ends(client, auth, db):
    job_id = _finished_job(client, auth, db)
    r = client.get(f"/jobs/{job_id}/events/stream", headers=auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    frames = _parse_sse(r.text)
    assert [f["event"] for f in frames] == ["status", "status", "status", "phase", "progress", "status"]
    assert frames[-1]["data"]["data"]["status"] == "succeeded"
    assert [f["id"] for f in frames] == sorted(f["id"] for f in frames)


def test_stream_resumes_after_last_event_id(client, auth, db):
    job_id = _finished_job(client, auth, db)
    all_frames = _parse_sse(client.get(f"/jobs/{job_id}/events/stream", headers=auth).text)
    resume = all_frames[3]["id"]
    r = client.get(f"/jobs/{job_id}/events/stream", headers={**auth, "Last-Event-ID": str(resume)})
    assert [f["id"] for f in _parse_sse(r.text)] == [f["id"] for f in all_frames[4:]]


def test_stream_is_live_and_ends_at_terminal(client, auth, db):
    job_id = client.post("/jobs", json=train_spec(), headers=auth).json()["id"]

    def worker() -> None:
        time.sleep(0.2)
        with session_scope(db) as s:
            claims_repo.claim_job(s, job_id, "w1", 60)
        for step in (1, 2, 3):
            time.sleep(0.05)
            with session_scope(db) as s:
                jobs_repo.set_progress(s, job_id, step, 3)
        with session_scope(db) as s:
            claims_repo.finish_job(s, job_id, "w1", "failed", {"code": "boom", "message": "x", "param": None})

    t = threading.Thread(target=worker)
    t.start()
    started = time.monotonic()
    with client.stream("GET", f"/jobs/{job_id}/events/stream", headers=auth) as r:
        text = "".join(r.iter_text())
    t.join()
    frames = _parse_sse(text)
    assert [f["data"]["data"].get("step") for f in frames if f["event"] == "progress"] == [1, 2, 3]
    assert frames[-1]["data"]["data"]["status"] == "failed"
    assert time.monotonic() - started < 10


def test_progress_not_stored_as_events_is_streamed_live_from_the_job_row(client, app, auth, db):
    app.state.sse_poll_seconds = 0.02
    job_id = client.post("/jobs", json=train_spec(), headers=auth).json()["id"]

    def worker() -> None:
        with session_scope(db) as s:
            claims_repo.claim_job(s, job_id, "w1", 60)
        for step in range(1, 21):
            time.sleep(0.05)
            with session_scope(db) as s:
                jobs_repo.set_progress(s, job_id, step, 20, store_event=step == 10)  # one milestone
        with session_scope(db) as s:
            claims_repo.finish_job(s, job_id, "w1", "succeeded")

    t = threading.Thread(target=worker)
    t.start()
    with client.stream("GET", f"/jobs/{job_id}/events/stream", headers=auth) as r:
        frames = _parse_sse("".join(r.iter_text()))
    t.join()
    live = [f for f in frames if f["event"] == "progress" and f["id"] is None]
    stored = [f for f in frames if f["event"] == "progress" and f["id"] is not None]
    assert [f["data"]["data"]["step"] for f in stored] == [10]
    steps = [f["data"]["data"]["step"] for f in live]
    assert len(steps) >= 5 and steps == sorted(set(steps)) and steps[-1] == 20 and 10 not in steps
    assert all(f["data"]["id"] is None and f["data"]["job_id"] == job_id for f in live)
    assert frames[-1]["data"]["data"]["status"] == "succeeded"
    listed = client.get(f"/jobs/{job_id}/events", headers=auth).json()
    assert [e["data"]["step"] for e in listed if e["type"] == "progress"] == [10]


def test_stream_sends_keepalive_comments(client, app, auth, db):
    app.state.sse_keepalive_seconds = 0.05
    job_id = client.post("/jobs", json=train_spec(), headers=auth).json()["id"]

    def cancel_later() -> None:
        time.sleep(0.3)
        with session_scope(db) as s:
            jobs_repo.request_cancel(s, job_id)

    t = threading.Thread(target=cancel_later)
    t.start()
    text = client.get(f"/jobs/{job_id}/events/stream", headers=auth).text
    t.join()
    assert ": keep-alive" in text and _parse_sse(text)[-1]["data"]["data"]["status"] == "cancelled"


def test_events_4xx(client, auth, db):
    job_id = _finished_job(client, auth, db)
    assert client.get("/jobs/nope/events", headers=auth).status_code == 404
    assert client.get("/jobs/nope/events/stream", headers=auth).status_code == 404
    r = client.get(f"/jobs/{job_id}/events/stream", headers={**auth, "Last-Event-ID": "abc"})
    assert r.status_code == 422 and error_params(r) == ["Last-Event-ID"]
    r = client.get(f"/jobs/{job_id}/events", params={"after": "x"}, headers=auth)
    assert r.status_code == 422 and error_params(r) == ["after"]


def test_live_progress_never_goes_back_when_events_overtake_the_job_row(monkeypatch):
    """The stream reads the job row, then the events: a step committed in between arrives as an
    event newer than the row. The row's older step must not follow it as live progress (seen under
    load: steps 1, 2, 3, 2, 3)."""
    import datetime as dt
    from types import SimpleNamespace

    import anyio

    from api import sse

    now = dt.datetime.now(dt.timezone.utc)

    def event(i, kind, data):
        return SimpleNamespace(id=i, job_id="j", type=kind, data=data, created_at=now)

    polls = iter(
        [
            ("running", (2, 3), [event(i, "progress", {"step": i, "total": 3}) for i in (1, 2, 3)]),
            ("failed", (3, 3), [event(4, "status", {"status": "failed"})]),
        ]
    )
    monkeypatch.setattr(sse, "_poll", lambda *args: next(polls))

    async def frames() -> list[str]:
        async def connected() -> bool:
            return False

        return [f async for f in sse.job_event_stream(None, "j", None, connected, poll_seconds=0)]

    text = "".join(anyio.run(frames))
    steps = [f["data"]["data"].get("step") for f in _parse_sse(text) if f["event"] == "progress"]
    assert steps == [1, 2, 3]
