"""Pause, resume, delete and checkpoints of a job through HTTP, with the 404/409/422 cases; the
worker's side (claim, park, finish) is played with the repository functions it calls."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import pytest

from api.db import claims_repo, events_repo, jobs_repo, metrics_repo
from api.db.models import utcnow
from api.db.session import session_scope
from api.services.job_files import open_checkpoint
from mar_core.checkpoint_files import checkpoint_path
from tests.api.conftest import broker_messages, error_params, train_spec


def _submit(client, auth, **over) -> str:
    r = client.post("/jobs", json=train_spec(**over), headers=auth)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _running(db, job_id: str, worker: str = "w1") -> None:
    with session_scope(db) as s:
        assert claims_repo.claim_job(s, job_id, worker, 30) is not None
        assert claims_repo.mark_running(s, job_id, worker)


def _finished(db, job_id: str, status: str = "succeeded") -> None:
    _running(db, job_id)
    with session_scope(db) as s:
        assert claims_repo.finish_job(s, job_id, "w1", status)


def _statuses(client, auth, job_id: str) -> list[tuple[str, str | None]]:
    evs = client.get(f"/jobs/{job_id}/events", headers=auth).json()
    return [(e["data"]["status"], e["data"].get("reason")) for e in evs if e["type"] == "status"]


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- pause and resume


def test_a_queued_job_pauses_at_once_and_resume_queues_and_nudges_it(client, auth, settings):
    job_id = _submit(client, auth)
    r = client.post(f"/jobs/{job_id}/pause", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "paused", r.text
    assert client.post(f"/jobs/{job_id}/pause", headers=auth).json()["status"] == "paused"  # stays
    assert client.get("/jobs?status=paused", headers=auth).json()["data"][0]["id"] == job_id

    r = client.post(f"/jobs/{job_id}/resume", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "queued", r.text
    assert [m["args"] for m in broker_messages(settings)] == [[job_id], [job_id]]  # submit, resume
    assert _statuses(client, auth, job_id) == [
        ("queued", None),
        ("paused", "pause_requested"),
        ("queued", "resume_requested"),
    ]
    r = client.post(f"/jobs/{job_id}/resume", headers=auth)
    assert r.status_code == 409 and r.json()["detail"][0]["code"] == "invalid_transition"


def test_a_running_job_is_pausing_until_its_worker_parks_it(client, auth, db, settings):
    job_id = _submit(client, auth)
    _running(db, job_id)
    assert client.post(f"/jobs/{job_id}/pause", headers=auth).json()["status"] == "pausing"
    r = client.post(f"/jobs/{job_id}/resume", headers=auth)
    assert r.status_code == 409 and "still pausing" in r.text
    with session_scope(db) as s:
        assert jobs_repo.stop_request(s, job_id) == "pause"
        assert claims_repo.heartbeat(s, job_id, "w1", 30)  # the worker still holds it
        assert not claims_repo.park_job(s, job_id, "w2")  # not its job
        assert claims_repo.park_job(s, job_id, "w1", step=7)
    job = client.get(f"/jobs/{job_id}", headers=auth).json()
    assert job["status"] == "paused" and job["worker_id"] is None and job["lease_expires_at"] is None
    assert client.post(f"/jobs/{job_id}/resume", headers=auth).json()["status"] == "queued"
    with session_scope(db) as s:
        again = claims_repo.claim_job(s, job_id, "w2", 30)  # the next claim resumes the run
        assert again is not None and again.attempt == 2


def test_the_reaper_pauses_a_pausing_job_whose_worker_is_gone(client, auth, db):
    job_id = _submit(client, auth)
    _running(db, job_id)
    client.post(f"/jobs/{job_id}/pause", headers=auth)
    with session_scope(db) as s:
        assert claims_repo.requeue_expired(s, now=utcnow() + timedelta(minutes=5)) == []
    assert client.get(f"/jobs/{job_id}", headers=auth).json()["status"] == "paused"


@pytest.mark.parametrize("end", ["succeeded", "failed", "cancelled", "cancelling"])
def test_pause_is_refused_for_a_cancelling_or_finished_job(client, auth, db, end):
    job_id = _submit(client, auth)
    if end == "cancelling":
        _running(db, job_id)
        client.post(f"/jobs/{job_id}/cancel", headers=auth)
    else:
        _finished(db, job_id, end)
    r = client.post(f"/jobs/{job_id}/pause", headers=auth)
    assert r.status_code == 409 and r.json()["detail"][0]["code"] == "invalid_transition", r.text
    assert client.get(f"/jobs/{job_id}", headers=auth).json()["status"] == end


def test_cancel_of_a_paused_job_is_immediate_and_of_a_pausing_one_waits_for_the_worker(client, auth, db):
    paused, pausing = _submit(client, auth), _submit(client, auth)
    client.post(f"/jobs/{paused}/pause", headers=auth)
    assert client.post(f"/jobs/{paused}/cancel", headers=auth).json()["status"] == "cancelled"
    _running(db, pausing)
    client.post(f"/jobs/{pausing}/pause", headers=auth)
    assert client.post(f"/jobs/{pausing}/cancel", headers=auth).json()["status"] == "cancelling"
    with session_scope(db) as s:
        assert jobs_repo.stop_request(s, pausing) == "cancel"
        assert not claims_repo.park_job(s, pausing, "w1")  # a cancel wins over the pause


def test_lifecycle_routes_answer_404_for_an_unknown_job(client, auth):
    for method, path in [
        ("POST", "/jobs/nope/pause"),
        ("POST", "/jobs/nope/resume"),
        ("DELETE", "/jobs/nope"),
        ("GET", "/jobs/nope/checkpoints"),
        ("GET", "/jobs/nope/checkpoints/last"),
    ]:
        r = client.request(method, path, headers=auth)
        assert r.status_code == 404 and r.json()["detail"][0]["code"] == "not_found", (path, r.text)


# --------------------------------------------------------------------------- delete


def test_delete_removes_a_finished_jobs_files_and_hides_it(client, auth, db, settings):
    key = {"Idempotency-Key": "nightly"}
    job_id = client.post("/jobs", json=train_spec(), headers={**auth, **key}).json()["id"]
    _finished(db, job_id)
    workdir = settings.job_dir(job_id)
    model = _write(workdir / "model.pt", b"weights")
    _write(checkpoint_path(workdir, "last"), b"state")
    with session_scope(db) as s:
        jobs_repo.add_artifact(s, job_id, "model.pt", model)
        metrics_repo.append_metrics(s, job_id, 1, {"loss": 1.0})

    r = client.delete(f"/jobs/{job_id}", headers=auth)
    assert r.status_code == 204, r.text
    assert not workdir.exists()
    for path in ("", "/events", "/metrics", "/artifacts", "/checkpoints"):
        assert client.get(f"/jobs/{job_id}{path}", headers=auth).status_code == 404, path
    assert client.delete(f"/jobs/{job_id}", headers=auth).status_code == 404
    assert job_id not in {j["id"] for j in client.get("/jobs", headers=auth).json()["data"]}
    with session_scope(db) as s:  # the record stays, with its history
        row = jobs_repo.get_job(s, job_id, deleted=True)
        assert row is not None and row.deleted_at is not None and row.status == "succeeded"
        assert jobs_repo.list_artifacts(s, job_id) == []
        assert len(metrics_repo.get_metrics(s, job_id)) == 1
        assert events_repo.last_event(s, job_id, "deleted").data == {"status": "succeeded"}
    again = client.post("/jobs", json=train_spec(), headers={**auth, **key})  # the key is free again
    assert again.status_code == 201 and again.json()["id"] != job_id


@pytest.mark.parametrize("state", ["queued", "running", "pausing", "paused"])
def test_delete_of_an_unfinished_job_is_409_and_keeps_its_files(client, auth, db, settings, state):
    job_id = _submit(client, auth)
    if state in ("running", "pausing"):
        _running(db, job_id)
    if state in ("pausing", "paused"):
        client.post(f"/jobs/{job_id}/pause", headers=auth)
    last = _write(checkpoint_path(settings.job_dir(job_id), "last"), b"state")
    r = client.delete(f"/jobs/{job_id}", headers=auth)
    assert r.status_code == 409 and "only a finished job" in r.text, r.text
    assert last.exists() and client.get(f"/jobs/{job_id}", headers=auth).json()["status"] == state


# --------------------------------------------------------------------------- checkpoints


def test_checkpoints_of_a_running_job_with_their_step_and_ap(client, auth, db, settings):
    job_id = _submit(client, auth)
    _running(db, job_id)
    assert client.get(f"/jobs/{job_id}/checkpoints", headers=auth).json() == {"last": None, "best": None}
    r = client.get(f"/jobs/{job_id}/checkpoints/last", headers=auth)
    assert r.status_code == 404 and error_params(r) == ["which"]

    workdir = settings.job_dir(job_id)
    last = _write(checkpoint_path(workdir, "last"), b"last-at-4")
    _write(checkpoint_path(workdir, "best"), b"best-at-2")
    with session_scope(db) as s:
        for step, ap in ((2, 0.30), (4, 0.25), (6, 0.30)):  # a tie keeps the earlier best
            metrics_repo.append_metrics(s, job_id, step, {"eval/AP": ap})
        events_repo.append_event(s, job_id, "checkpoint", {"step": 2, "path": str(last)})
        events_repo.append_event(s, job_id, "checkpoint", {"step": 4, "path": str(last)})
    found = client.get(f"/jobs/{job_id}/checkpoints", headers=auth).json()
    assert (found["last"]["step"], found["last"]["AP"], found["last"]["size"]) == (4, 0.25, 9)
    assert (found["best"]["step"], found["best"]["AP"]) == (2, 0.30)
    assert found["last"]["url"].endswith(f"/jobs/{job_id}/checkpoints/last")

    r = client.get(f"/jobs/{job_id}/checkpoints/last", headers=auth)
    assert r.status_code == 200 and r.content == b"last-at-4"
    assert r.headers["X-Checksum-Sha256"] == hashlib.sha256(b"last-at-4").hexdigest()
    assert 'filename="last.pt"' in r.headers["Content-Disposition"]
    assert client.get(f"/jobs/{job_id}/checkpoints/best", headers=auth).content == b"best-at-2"
    assert client.get(f"/jobs/{job_id}/checkpoints/model", headers=auth).status_code == 422


def test_a_checkpoint_rewritten_during_its_download_keeps_an_honest_checksum(settings, tmp_path):
    """The run replaces last.pt atomically (a new file renamed over it) at any moment: the
    bytes sent and the digest sent are both of the file as it was opened."""
    path = _write(checkpoint_path(settings.job_dir("j1"), "last"), b"step-4" * 1000)
    opened = open_checkpoint(settings, "j1", "last")
    assert opened is not None
    f, size, digest = opened
    newer = _write(tmp_path / "next.pt", b"step-5" * 1200)
    os.replace(newer, path)  # as atomic_torch_save does
    with f:
        sent = f.read()
    assert (len(sent), hashlib.sha256(sent).hexdigest()) == (size, digest)
    assert sent == b"step-4" * 1000
    assert open_checkpoint(settings, "j1", "best") is None
