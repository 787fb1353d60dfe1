"""Settings from the environment, the broker configuration, and migrations from any cwd."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sqlalchemy import inspect

from api.broker import celery_broker_config
from api.db.session import init_db, make_engine
from api.settings import Settings, get_settings
from mar_core.paths import redact_paths


def test_defaults_derive_from_state_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in (
        "MAR_STATE_DIR",
        "DATABASE_URL",
        "BROKER_URL",
        "MAR_DATA_ROOTS",
        "MAR_CHECKPOINT_ROOT",
        "MAR_ARTIFACT_ROOT",
        "MAR_QUEUE",
    ):
        monkeypatch.delenv(var, raising=False)
    st = Settings()
    state = (tmp_path / ".mar").resolve()
    assert st.state_dir == state and st.database_url == f"sqlite:///{state / 'mar.db'}"
    assert st.data_roots == [state / "data"] and st.checkpoint_root == state / "checkpoints"
    assert st.artifact_root == state / "jobs" and st.job_dir("abc") == state / "jobs" / "abc"
    assert (st.broker_url, st.queue, st.lease_seconds, st.heartbeat_seconds) == (
        "filesystem://",
        "mar-gpu",
        60,
        10,
    )


def test_environment_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MAR_STATE_DIR", str(tmp_path / "s"))
    monkeypatch.setenv("MAR_DATA_ROOTS", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    monkeypatch.setenv("BROKER_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("MAR_LEASE_SECONDS", "5")
    get_settings.cache_clear()
    try:
        st = get_settings()
        assert get_settings() is st
        assert st.data_roots == [tmp_path / "a", tmp_path / "b"] and st.lease_seconds == 5
        assert st.broker_url.startswith("redis://")
        monkeypatch.setenv("MAR_DATA_ROOTS", json.dumps([str(tmp_path / "c")]))
        assert Settings().data_roots == [tmp_path / "c"]
        monkeypatch.setenv("MAR_DATA_ROOTS", f"{tmp_path / 'd'},{tmp_path / 'e'}")
        assert Settings().data_roots == [tmp_path / "d", tmp_path / "e"]
    finally:
        get_settings.cache_clear()


def test_filesystem_broker_config_stays_in_state_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    st = Settings(state_dir=tmp_path / "state")
    cfg = celery_broker_config(st)
    opts = cfg["broker_transport_options"]
    assert opts["data_folder_in"] == opts["data_folder_out"] == str(st.broker_dir / "queue")
    assert opts["control_folder"] == str(st.broker_dir / "control")
    assert all(
        Path(v).is_dir() for k, v in opts.items() if k.endswith("folder") or k.startswith("data_folder")
    )
    assert cfg["task_serializer"] == "json" and cfg["worker_prefetch_multiplier"] == 1
    assert cfg["task_routes"]["mar.run_job"]["queue"] == "mar-gpu"
    from api.broker import make_celery_client, send_run_job

    assert send_run_job(make_celery_client(st), "job1", st.queue)
    assert not (tmp_path / "control").exists()


def test_init_db_from_another_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")
    init_db(engine)
    init_db(engine)  # idempotent
    names = set(inspect(engine).get_table_names())
    assert {"jobs", "events", "metrics", "artifacts", "api_keys", "alembic_version"} <= names
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()


def test_messages_name_the_configured_folders_instead_of_their_paths(tmp_path):
    """The data root lies inside the state dir by default: the longer path is named first."""
    st = Settings(state_dir=tmp_path / "state")
    text = f"missing {st.data_roots[0]}/coco/x.png; see {st.state_dir}/mar.db and {st.job_dir('j1')}"
    shown = redact_paths(text, st.path_names())
    assert shown == "missing <data root>/coco/x.png; see <state dir>/mar.db and <job artifacts>/j1"
