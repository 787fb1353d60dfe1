"""Sharing the workers: pools, priorities, quotas, run segments and live workers.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

``jobs.pool`` (None: the deployment's first pool), ``jobs.priority`` (0 low, 1 normal, 2 high),
``jobs.preempted_by``; ``api_keys.high_priority``; the tables ``project_quotas`` (an admin's limits),
``run_segments`` (each stretch of a job on a worker: what quotas and fair share count) and
``workers`` (live workers per pool, by heartbeat). Jobs stored before it are normal-priority jobs
of the first pool.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("jobs", sa.Column("pool", sa.String(64), nullable=True))
    op.add_column("jobs", sa.Column("priority", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("jobs", sa.Column("preempted_by", sa.String(32), nullable=True))
    op.add_column(
        "api_keys", sa.Column("high_priority", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.create_table(
        "project_quotas",
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("max_running", sa.Integer(), nullable=True),
        sa.Column("max_queued", sa.Integer(), nullable=True),
        sa.Column("gpu_hours_per_day", sa.Float(), nullable=True),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("project", name=op.f("pk_project_quotas")),
    )
    op.create_table(
        "run_segments",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("pool", sa.String(64), nullable=True),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("start_step", sa.Integer(), nullable=False),
        sa.Column("end_step", sa.Integer(), nullable=True),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("ended_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_run_segments_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_segments")),
    )
    op.create_index(op.f("ix_run_segments_job_id"), "run_segments", ["job_id"])
    op.create_index("ix_run_segments_project_ended_at", "run_segments", ["project", "ended_at"])
    op.create_table(
        "workers",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("pool", sa.String(64), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("last_seen", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    op.create_index(op.f("ix_workers_pool"), "workers", ["pool"])


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_table("run_segments")
    op.drop_table("project_quotas")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("high_priority")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("preempted_by")
        batch.drop_column("priority")
        batch.drop_column("pool")
