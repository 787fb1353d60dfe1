"""Stored job specs: the ``distill`` section per method.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Until this revision ``DistillSpec`` was one flat model holding every method's fields, and every
stored distill spec carries all of them (a MAR job has ``loss_weight: null``, a CWD job
``alpha: null``...). Now each method has its own spec model that refuses another method's
fields, so a job queued or retried after the upgrade would fail re-validation in the worker.
This revision keeps, in each stored spec, only the fields of its method (the lists below are
frozen copies of the method models at this revision: a migration never imports the code it
migrates). A field of another method was ignored by the job anyway. Downgrade is a no-op: the
old flat model filled the dropped fields with their defaults.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SHARED = {"method", "adapter", "kd_warmup_iters"}
OWN_FIELDS = {
    "mar": {"alpha", "beta", "gamma", "feature_loss", "relation_loss", "mask", "kappas", "ring_values",
            "gaussian_sigma", "scale_norm", "relation_weight", "relation_weight_floor"},
    "feature_mse": {"loss_weight"},
    "fgd": {"fgd_alpha", "fgd_beta", "fgd_gamma", "fgd_lambda"},
    "mgd": {"loss_weight", "mgd_ratio"},
    "pkd": {"loss_weight"},
    "cwd": {"loss_weight", "temperature"},
}  # fmt: skip


def per_method(distill: dict) -> dict:
    """``distill`` with only the shared fields and those of its method (unknown methods untouched)."""
    own = OWN_FIELDS.get(distill.get("method", "mar"))
    if own is None:
        return distill
    return {k: v for k, v in distill.items() if k in SHARED | own}


def upgrade() -> None:
    jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("spec", sa.JSON))
    conn = op.get_bind()
    for job_id, spec in conn.execute(sa.select(jobs.c.id, jobs.c.spec)).all():
        distill = (spec or {}).get("distill")
        if isinstance(distill, dict) and per_method(distill) != distill:
            conn.execute(
                jobs.update().where(jobs.c.id == job_id).values(spec={**spec, "distill": per_method(distill)})
            )


def downgrade() -> None:
    pass
