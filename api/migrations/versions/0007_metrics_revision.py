"""Metrics revision: ``jobs.metrics_rev``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

Counts the metric writes of a job (``jobs_repo.append_metrics`` adds one per flush). It is the
``ETag`` of ``GET /jobs/{id}/metrics`` and keys the API's cache of serialised series, so a poller
whose series did not change gets a 304 and N clients of a running job cost one read per flush.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("metrics_rev", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("metrics_rev")
