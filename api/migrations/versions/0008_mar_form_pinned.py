"""Stored MAR job specs: the form and the weights they were submitted under, pinned.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

Until this revision an unset MAR ``feature_norm`` meant the raw FPN maps (``"none"``) and an unset
``alpha`` / ``beta`` / ``gamma`` meant ``"auto"`` in a job. Now an unset ``feature_norm`` is
settled per detector family (standardised maps for one-stage students) and unset weights take
each form's own job default (``MARSpec.JOB_UNSET``, ``RAW_JOB_UNSET``). A job queued or retried
after the upgrade would then run another method than the one submitted. This revision writes, in
each stored MAR spec, ``feature_norm: "none"`` where it is unset and ``"auto"`` for every unset
weight: what those specs meant when they were stored. Downgrade is a no-op: the old code reads
the pinned values as it read the unset ones.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# frozen at this revision: a migration never imports the code it migrates
WEIGHTS = ("alpha", "beta", "gamma")


def pinned(distill: dict) -> dict:
    """A MAR ``distill`` section with its unset form and weights as they were meant; another
    method's untouched."""
    if distill.get("method", "mar") != "mar":
        return distill
    out = dict(distill)
    if out.get("feature_norm") is None:
        out["feature_norm"] = "none"
    for field in WEIGHTS:
        if out.get(field) is None:
            out[field] = "auto"
    return out


def upgrade() -> None:
    jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("spec", sa.JSON))
    conn = op.get_bind()
    for job_id, spec in conn.execute(sa.select(jobs.c.id, jobs.c.spec)).all():
        distill = (spec or {}).get("distill")
        if isinstance(distill, dict) and pinned(distill) != distill:
            conn.execute(
                jobs.update().where(jobs.c.id == job_id).values(spec={**spec, "distill": pinned(distill)})
            )


def downgrade() -> None:
    pass
