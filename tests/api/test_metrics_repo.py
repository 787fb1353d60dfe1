"""Metric series on SQLite and PostgreSQL (``metrics_repo``): one value per (name, step)."""

from __future__ import annotations

from api.db import metrics_repo
from api.db.session import session_scope
from tests.api.repo_helpers import new_job


def test_metrics_upsert_keeps_one_value_per_step(factory):
    job_id = new_job(factory)
    with session_scope(factory) as s:
        metrics_repo.append_metrics(s, job_id, 10, {"loss/total": 2.0, "lr": 0.1})
        metrics_repo.append_metrics(s, job_id, 20, {"loss/total": 1.5})
    with session_scope(factory) as s:  # a resumed run reports step 20 again
        metrics_repo.append_metrics(s, job_id, 20, {"loss/total": 1.25})
        metrics_repo.append_metrics(s, job_id, 30, {})
    with session_scope(factory) as s:
        rows = metrics_repo.get_metrics(s, job_id)
        assert [(m.name, m.step, m.value) for m in rows] == [
            ("loss/total", 10, 2.0),
            ("loss/total", 20, 1.25),
            ("lr", 10, 0.1),
        ]
        assert [(m.name, m.step) for m in metrics_repo.get_metrics(s, job_id, names=["lr"])] == [("lr", 10)]
        assert [m.step for m in metrics_repo.get_metrics(s, job_id, since_step=20)] == [20]
