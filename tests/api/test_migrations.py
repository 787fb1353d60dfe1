"""Alembic revisions on real databases: a job stored under an older revision still validates."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from api.db import jobs_repo
from api.db.models import ApiKey, Job, Project
from api.db.session import alembic_config, make_engine
from mar_core.spec import JobSpec
from tests.api.conftest import _find_postgres

TRAIN = {"kind": "train", "dataset": {"path": "shapes"}}

# A distill spec as the flat DistillSpec of revision 0001 stored it: every method's fields.
FLAT_PEER_FIELDS = {
    "loss_weight": None,
    "temperature": 1.0,
    "mgd_ratio": None,
    "fgd_alpha": None,
    "fgd_beta": None,
    "fgd_gamma": None,
    "fgd_lambda": None,
}
FLAT_MAR_FIELDS = {
    "alpha": None,
    "beta": None,
    "gamma": None,
    "feature_loss": True,
    "relation_loss": True,
    "mask": "rings",
    "kappas": [1.0, 1.5, 2.0],
    "ring_values": [1.0, 0.5, 0.25],
    "gaussian_sigma": 0.5,
    "scale_norm": True,
    "relation_weight": "uniform",
    "relation_weight_floor": 0.1,
}


def _flat(method: str, **values) -> dict:
    return {
        "method": method,
        "adapter": "auto",
        "kd_warmup_iters": None,
        **FLAT_MAR_FIELDS,
        **FLAT_PEER_FIELDS,
        **values,
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
        yield engine
        engine.dispose()
        return
    url, why = _find_postgres()
    if url is None:
        pytest.skip(f"PostgreSQL unreachable ({why})")
    schema = f"mar_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _upgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def test_0002_keeps_only_each_methods_distill_fields(empty_engine):
    _upgrade(empty_engine, "0001")
    base = {"kind": "distill", "dataset": {"path": "shapes"}, "teacher": {"checkpoint": "jobs/t"}}
    stored = {
        "mar": {**base, "distill": _flat("mar", alpha=0.001)},
        "cwd": {**base, "distill": _flat("cwd", loss_weight=0.04, temperature=2.0)},
        "fgd": {**base, "distill": _flat("fgd", fgd_alpha=1e-3)},
        "train": {"kind": "train", "dataset": {"path": "shapes"}},
    }
    now = datetime.now(timezone.utc)
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.String),
        sa.column("kind", sa.String),
        sa.column("spec", sa.JSON),
        sa.column("status", sa.String),
        sa.column("attempt", sa.Integer),
        sa.column("max_attempts", sa.Integer),
        sa.column("cancel_requested", sa.Boolean),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    with empty_engine.begin() as conn:
        for job_id, spec in stored.items():
            conn.execute(
                jobs.insert().values(
                    id=job_id,
                    kind=spec["kind"],
                    spec=spec,
                    status="queued",
                    attempt=0,
                    max_attempts=3,
                    cancel_requested=False,
                    created_at=now,
                    updated_at=now,
                )
            )
    for spec in stored.values():
        if spec["kind"] == "distill":
            with pytest.raises(ValueError):  # what the worker would hit without the revision
                JobSpec.model_validate(spec)

    _upgrade(empty_engine, "head")
    with empty_engine.connect() as conn:
        migrated = {row.id: row.spec for row in conn.execute(sa.select(jobs.c.id, jobs.c.spec))}
    specs = {job_id: JobSpec.model_validate(spec) for job_id, spec in migrated.items()}
    assert specs["mar"].distill.alpha == 0.001 and specs["mar"].distill.kappas == [1.0, 1.5, 2.0]
    assert (specs["cwd"].distill.loss_weight, specs["cwd"].distill.temperature) == (0.04, 2.0)
    assert specs["fgd"].distill.fgd_alpha == 1e-3
    assert migrated["train"] == stored["train"]
    assert "loss_weight" not in migrated["mar"]["distill"] and "alpha" not in migrated["cwd"]["distill"]


def test_0004_moves_keys_jobs_and_idempotency_keys_to_the_default_project(empty_engine):
    _upgrade(empty_engine, "0003")
    now = datetime.now(timezone.utc)
    with empty_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_keys (id, name, key_hash, prefix, created_at) "
                "VALUES ('k1', 'old', :h, 'mar_x', :now)"
            ),
            {"h": "0" * 64, "now": now},
        )
        for job_id, key in (("j1", "nightly"), ("j2", None)):
            conn.execute(
                text(
                    "INSERT INTO jobs (id, kind, spec, status, attempt, max_attempts, cancel_requested, "
                    "idempotency_key, created_at, updated_at) VALUES (:id, 'train', '{}', 'queued', 0, 3, "
                    ":false, :key, :now, :now)"
                ),
                {"id": job_id, "key": key, "now": now, "false": False},
            )
    _upgrade(empty_engine, "head")
    factory = sessionmaker(empty_engine)
    with factory() as s:
        key = s.get(ApiKey, "k1")
        assert (key.project, key.admin) == ("default", False)
        assert {j.project for j in s.query(Job)} == {"default"}
        assert jobs_repo.get_job_by_idempotency_key(s, "default", "nightly").id == "j1"
        assert jobs_repo.get_job_by_idempotency_key(s, "other", "nightly") is None
        assert s.get(Job, "j1").idempotency_key is None
        assert [p.name for p in s.query(Project)] == ["default"]
        # the same key in another project is a new job, not a unique-constraint error
        jobs_repo.create_job(s, JobSpec.model_validate(TRAIN), idempotency_key="nightly", project="other")
        s.flush()


def test_0006_adds_deleted_at_and_keeps_existing_jobs_visible(empty_engine):
    _upgrade(empty_engine, "0004")
    now = datetime.now(timezone.utc)
    with empty_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (id, kind, spec, status, attempt, max_attempts, cancel_requested, "
                "project, created_at, updated_at) VALUES ('j1', 'train', :spec, 'succeeded', 1, 3, "
                ":false, 'default', :now, :now)"
            ),
            {"spec": '{"kind": "train", "dataset": {"path": "shapes"}}', "now": now, "false": False},
        )
    _upgrade(empty_engine, "head")
    assert "deleted_at" in {c["name"] for c in sa.inspect(empty_engine).get_columns("jobs")}
    factory = sessionmaker(empty_engine)
    with factory() as s:
        assert jobs_repo.get_job(s, "j1").deleted_at is None
        assert [j.id for j in jobs_repo.list_jobs(s)[0]] == ["j1"]
        jobs_repo.mark_deleted(s, "j1")
        s.commit()
        assert jobs_repo.get_job(s, "j1") is None and jobs_repo.list_jobs(s)[0] == []
    cfg = alembic_config()
    with empty_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    assert "deleted_at" not in {c["name"] for c in sa.inspect(empty_engine).get_columns("jobs")}


def test_0008_pins_the_form_and_weights_a_stored_mar_job_was_submitted_under(empty_engine):
    _upgrade(empty_engine, "0007")
    base = {"kind": "distill", "dataset": {"path": "shapes"}, "teacher": {"checkpoint": "jobs/t"}}
    stored = {
        # as revision 0007's code stored them: feature_norm "none" by default, or absent (older)
        "mar": {**base, "distill": {"method": "mar", "alpha": None, "beta": 0.01, "gamma": None}},
        "mar-norm": {**base, "distill": {"method": "mar", "feature_norm": "none", "alpha": None}},
        "mar-std": {**base, "distill": {"method": "mar", "feature_norm": "channel", "gamma": 100.0}},
        "cwd": {**base, "distill": {"method": "cwd", "loss_weight": None}},
    }
    now = datetime.now(timezone.utc)
    with empty_engine.begin() as conn:
        for job_id, spec in stored.items():
            conn.execute(
                text(
                    "INSERT INTO jobs (id, kind, spec, status, attempt, max_attempts, cancel_requested, "
                    "project, created_at, updated_at, metrics_rev) VALUES (:id, 'distill', :spec, 'queued', "
                    "0, 3, :false, 'default', :now, :now, 0)"
                ),
                {"id": job_id, "spec": json.dumps(spec), "now": now, "false": False},
            )
    _upgrade(empty_engine, "head")
    with empty_engine.connect() as conn:
        migrated = {row.id: row.spec for row in conn.execute(text("SELECT id, spec FROM jobs"))}
    migrated = {k: json.loads(v) if isinstance(v, str) else v for k, v in migrated.items()}
    specs = {job_id: JobSpec.model_validate(spec).distill for job_id, spec in migrated.items()}
    mar = specs["mar"]
    assert (mar.feature_norm, mar.alpha, mar.beta, mar.gamma) == ("none", "auto", 0.01, "auto")
    norm = specs["mar-norm"]
    assert (norm.feature_norm, norm.alpha, norm.beta, norm.gamma) == ("none", "auto", "auto", "auto")
    std = specs["mar-std"]  # a form given is kept; its unset weights were "auto" when stored
    assert (std.feature_norm, std.alpha, std.beta, std.gamma) == ("channel", "auto", "auto", 100.0)
    assert migrated["cwd"] == stored["cwd"]  # a peer's unset weight still means "auto"
