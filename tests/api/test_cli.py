"""The service sub-commands of ``mar`` against a live API (uvicorn in a thread)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api import client_cmd
from api.db import claims_repo, events_repo, jobs_repo
from api.db.session import session_scope
from api.sdk import MarClient
from api.settings import get_settings
from mar_cli.main import main
from tests.api.conftest import train_spec


@pytest.fixture
def live(app, settings, monkeypatch) -> Iterator[str]:
    """The app served by uvicorn on a free port; env points the CLI at it and its state."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MAR_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("MAR_API_URL", url)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield url
    server.should_exit = True
    thread.join(timeout=10)
    get_settings.cache_clear()


@pytest.fixture
def key(live, capsys, monkeypatch) -> str:
    assert main(["apikey", "create", "cli"]) == 0
    k = capsys.readouterr().out.strip()
    monkeypatch.setenv("MAR_API_KEY", k)
    return k


def _spec_file(tmp_path: Path, **over) -> str:
    p = tmp_path / "spec.json"
    p.write_text(json.dumps(train_spec(**over)))
    return str(p)


def test_apikey_lifecycle(live, capsys, monkeypatch):
    assert main(["db", "upgrade"]) == 0
    assert "database at head" in capsys.readouterr().out
    assert main(["apikey", "create", "alice"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("mar_")
    assert main(["apikey", "list"]) == 0
    listing = capsys.readouterr().out
    assert "alice" in listing and key not in listing
    key_id = listing.splitlines()[1].split()[0]
    assert main(["jobs", "--api-key", key]) == 0
    capsys.readouterr()
    assert main(["apikey", "revoke", key_id]) == 0
    assert main(["apikey", "revoke", key_id]) == 1
    assert main(["jobs", "--api-key", key]) == 1
    assert "unknown or revoked" in capsys.readouterr().err


def test_submit_status_jobs_cancel(key, tmp_path, capsys):
    assert main(["submit", _spec_file(tmp_path), "--idempotency-key", "k1"]) == 0
    job_id = capsys.readouterr().out.strip()
    assert main(["submit", _spec_file(tmp_path), "--idempotency-key", "k1"]) == 0
    assert capsys.readouterr().out.strip() == job_id
    assert main(["status", job_id]) == 0
    assert "queued" in capsys.readouterr().out
    assert main(["jobs", "--status", "queued"]) == 0
    assert job_id in capsys.readouterr().out
    assert main(["cancel", job_id]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert main(["cancel", job_id]) == 1
    assert "already cancelled" in capsys.readouterr().err


def test_submit_bad_spec_exits_2_naming_the_field(key, tmp_path, capsys):
    assert main(["submit", _spec_file(tmp_path, train={"lr": 0})]) == 2
    assert "train.lr" in capsys.readouterr().err
    assert main(["submit", _spec_file(tmp_path, dataset={"path": "/etc"})]) == 2
    assert "dataset.path" in capsys.readouterr().err
    assert main(["submit", str(tmp_path / "missing.json")]) == 2


def test_submit_wait_follows_to_the_end(key, tmp_path, capsys, db):
    outcome = {}

    def worker() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with session_scope(db) as s:
                ids = claims_repo.queued_job_ids(s)
            if ids:
                break
            time.sleep(0.02)
        (job_id,) = ids
        with session_scope(db) as s:
            claims_repo.claim_job(s, job_id, "w", 60)
            claims_repo.mark_running(s, job_id, "w")
            jobs_repo.set_phase(s, job_id, "train")
        for step in range(1, 4):
            with session_scope(db) as s:
                jobs_repo.set_progress(s, job_id, step, 3)
        with session_scope(db) as s:
            jobs_repo.set_phase(s, job_id, "eval")
            outcome["ok"] = claims_repo.finish_job(s, job_id, "w", "succeeded")

    t = threading.Thread(target=worker)
    t.start()
    rc = main(["submit", _spec_file(tmp_path), "--wait"])
    t.join()
    out = capsys.readouterr().out
    assert rc == 0 and outcome["ok"]
    assert "phase: train" in out and "phase: eval" in out and out.strip().endswith("succeeded")


def test_wait_on_a_failed_job_exits_1(key, tmp_path, capsys, db):
    assert main(["submit", _spec_file(tmp_path)]) == 0
    job_id = capsys.readouterr().out.strip()
    with session_scope(db) as s:
        claims_repo.claim_job(s, job_id, "w", 60)
        claims_repo.finish_job(
            s, job_id, "w", "failed", {"code": "dataset_invalid", "message": "bad", "param": "dataset.path"}
        )
    assert main(["status", job_id, "--wait"]) == 0  # already finished: status itself succeeds
    assert main(["submit", _spec_file(tmp_path, seed=1)]) == 0
    other = capsys.readouterr().out.strip().splitlines()[-1]
    with session_scope(db) as s:
        jobs_repo.request_cancel(s, other)
    assert main(["status", other, "--wait"]) == 0
    with MarClient() as client:
        assert client_cmd._follow(client, job_id) == 1
    assert "dataset_invalid (dataset.path): bad" in capsys.readouterr().err


def test_download_verifies_sha256(key, tmp_path, capsys, db, settings):
    assert main(["submit", _spec_file(tmp_path)]) == 0
    job_id = capsys.readouterr().out.strip()
    f = settings.job_dir(job_id) / "model.pt"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"weights")
    with session_scope(db) as s:
        jobs_repo.add_artifact(s, job_id, "model.pt", f)
    out = tmp_path / "dl"
    assert main(["download", job_id, "--name", "model.pt", "--out", str(out)]) == 0
    assert (out / "model.pt").read_bytes() == b"weights"
    f.write_bytes(b"tampered")  # the server notices (409) before the client would (sha256)
    assert main(["download", job_id, "--out", str(tmp_path / "dl2")]) == 1
    assert "changed on disk" in capsys.readouterr().err
    assert not (tmp_path / "dl2" / "model.pt").exists()


def test_pause_resume_checkpoints_delete(key, tmp_path, capsys, db, settings):
    assert main(["submit", _spec_file(tmp_path)]) == 0
    job_id = capsys.readouterr().out.strip()
    assert main(["pause", job_id]) == 0
    assert f"{job_id}  paused" in capsys.readouterr().out
    assert main(["resume", job_id]) == 0
    assert f"{job_id}  queued" in capsys.readouterr().out
    assert main(["resume", job_id]) == 1
    assert "not paused" in capsys.readouterr().err

    assert main(["checkpoints", job_id, "--download", "last", "--out", str(tmp_path / "dl")]) == 1
    assert "no last checkpoint yet" in capsys.readouterr().err
    last = settings.job_dir(job_id) / "checkpoints" / "last.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"state")
    with session_scope(db) as s:
        events_repo.append_event(s, job_id, "checkpoint", {"step": 3, "path": str(last)})
    assert main(["checkpoints", job_id, "--download", "last", "--out", str(tmp_path / "dl")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[:4] == ["last", "3", "-", "5"] and "best  -" in out
    assert "sha256 verified" in out and (tmp_path / "dl" / "last.pt").read_bytes() == b"state"

    assert main(["delete", job_id]) == 1  # queued: cancel it first
    assert "only a finished job" in capsys.readouterr().err
    assert main(["cancel", job_id]) == 0 and main(["delete", job_id]) == 0
    assert f"job {job_id} deleted" in capsys.readouterr().out
    assert not last.exists()
    assert main(["status", job_id]) == 1


def test_unreachable_api(monkeypatch, capsys, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["jobs", "--api-url", f"http://127.0.0.1:{port}", "--api-key", "x"]) == 1
    assert "cannot reach the API" in capsys.readouterr().err


def test_jobs_prints_no_terminal_escape_of_a_stored_name(key, tmp_path, capsys, db):
    """A name stored before names were checked (the spec now refuses control characters)."""
    from sqlalchemy import update

    from api.db.models import Job
    from api.db.session import session_scope

    assert main(["submit", _spec_file(tmp_path, name="plain")]) == 0
    job_id = capsys.readouterr().out.strip()
    with session_scope(db) as s:
        s.execute(update(Job).where(Job.id == job_id).values(name="\x1b[2J\x1b]0;pwned\x07evil"))
    assert main(["jobs"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[2J\\x1b]0;pwned\\x07evil" in out


def test_quota_and_queue(live, capsys, monkeypatch, tmp_path):
    """``mar quota`` (an admin key sets, a project key reads), then ``mar queue`` shows the
    project's waiting job in its pool, which has no live worker here."""
    assert main(["apikey", "create", "ops", "--admin"]) == 0
    admin = capsys.readouterr().out.strip()
    assert main(["apikey", "create", "alpha", "--project", "alpha", "--high-priority"]) == 0
    alpha = capsys.readouterr().out.strip()
    monkeypatch.setenv("MAR_API_KEY", admin)
    assert main(["quota", "alpha", "--max-queued", "1", "--gpu-hours-per-day", "2.5"]) == 0
    assert "max_running none, max_queued 1, gpu_hours_per_day 2.5" in capsys.readouterr().out
    monkeypatch.setenv("MAR_API_KEY", alpha)
    assert main(["quota", "alpha", "--max-queued", "5"]) == 1  # not an admin
    assert "admin key" in capsys.readouterr().err
    assert main(["submit", _spec_file(tmp_path, priority="high")]) == 0
    job_id = capsys.readouterr().out.split()[0]
    assert main(["submit", _spec_file(tmp_path)]) == 1  # max_queued 1: the queue is full
    assert "max_queued is 1" in capsys.readouterr().err
    assert main(["quota", "alpha"]) == 0
    assert "using: 0 running, 1 queued" in capsys.readouterr().out
    assert main(["queue"]) == 0
    out = capsys.readouterr().out
    assert "pool gpu: 0 worker slot(s), 0 running, 1 waiting" in out and "no live worker" in out
    assert f"#1   {job_id}" in out and "high" in out
