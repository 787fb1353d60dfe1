"""A job's metric series (``models.Metric``): one value per (name, step), upserted, so a resumed
run overwrites and never duplicates; every write bumps ``jobs.metrics_rev`` (the series' ETag)."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from api.db.models import Job, Metric, utcnow

log = logging.getLogger(__name__)


def _insert_for(s: Session):
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql_insert
    if dialect == "sqlite":
        return sqlite_insert
    # only SQLite and PostgreSQL are supported
    raise NotImplementedError(f"metrics upsert: unsupported dialect {dialect}")


def append_metrics(
    s: Session, job_id: str, step: int, values: Mapping[str, float], time: datetime | None = None
) -> None:
    """Store ``values`` at ``step``; an existing (job, name, step) is overwritten (upsert).
    Non-finite values are left out with a warning (SQLite cannot store NaN; the job's failure
    message, not its series, says that a loss diverged)."""
    bad = sorted(k for k, v in values.items() if not math.isfinite(float(v)))
    if bad:
        log.warning("job %s step %d: non-finite metric(s) not stored: %s", job_id, step, ", ".join(bad))
    when = time or utcnow()
    rows = [
        {"job_id": job_id, "name": k, "step": int(step), "value": float(v), "time": when}
        for k, v in values.items()
        if k not in bad
    ]
    if not rows:
        return
    insert = _insert_for(s)
    stmt = insert(Metric).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[Metric.job_id, Metric.name, Metric.step],
        set_={"value": stmt.excluded.value, "time": stmt.excluded.time},
    )
    s.execute(stmt)
    s.execute(update(Job).where(Job.id == job_id).values(metrics_rev=Job.metrics_rev + 1))


def get_metrics(
    s: Session,
    job_id: str,
    names: Iterable[str] | None = None,
    since_step: int | None = None,
    with_time: bool = True,
) -> list[Row[Any]]:
    """``(name, step, value, time)`` rows (``(name, step, value)`` without ``with_time``) ordered
    by (name, step); ``since_step`` is inclusive. Plain column tuples, not ORM objects: a
    10,000-point series is read ~3x faster; leaving the time out saves parsing 10,000 datetimes."""
    columns = (Metric.name, Metric.step, Metric.value, *((Metric.time,) if with_time else ()))
    stmt = select(*columns).where(Metric.job_id == job_id)
    if names:
        stmt = stmt.where(Metric.name.in_(list(names)))
    if since_step is not None:
        stmt = stmt.where(Metric.step >= since_step)
    return list(s.execute(stmt.order_by(Metric.name, Metric.step)).all())


def best_metric(s: Session, job_id: str, name: str) -> tuple[int, float] | None:
    """``(step, value)`` of the highest value of a series (the earliest step on a tie), or None."""
    stmt = select(Metric.step, Metric.value).where(Metric.job_id == job_id, Metric.name == name)
    row = s.execute(stmt.order_by(Metric.value.desc(), Metric.step).limit(1)).first()
    return None if row is None else (int(row.step), float(row.value))


def metric_value(s: Session, job_id: str, name: str, step: int) -> float | None:
    """One point of a series, or None."""
    stmt = select(Metric.value).where(Metric.job_id == job_id, Metric.name == name, Metric.step == step)
    return s.execute(stmt).scalar_one_or_none()
