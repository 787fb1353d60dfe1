"""Uploaded datasets, and the dataset a job reads.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

``datasets`` holds one row per uploaded dataset (``POST /datasets``); ``jobs.dataset_id`` names
the uploaded dataset a job reads (null for a dataset given by path), so ``DELETE /datasets/{id}``
can refuse while a queued or running job uses it. No foreign key: SQLite cannot add one to an
existing table without rebuilding it; the delete/submit race is settled by a conditional update
of the dataset row (see ``api.db.datasets_repo``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("path", sa.String(4096), nullable=False),
        sa.Column("splits", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("archive_size", sa.BigInteger(), nullable=False),
        sa.Column("archive_sha256", sa.String(64), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("expanded_size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
    )
    op.create_index("ix_datasets_created_at_id", "datasets", ["created_at", "id"])
    op.add_column("jobs", sa.Column("dataset_id", sa.String(32), nullable=True))
    op.create_index("ix_jobs_dataset_id", "jobs", ["dataset_id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_dataset_id", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("dataset_id")
    op.drop_index("ix_datasets_created_at_id", table_name="datasets")
    op.drop_table("datasets")
