"""Job lifecycle: deleted jobs.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

``jobs.deleted_at`` is set by ``DELETE /jobs/{id}`` (a finished job: its files are removed, the
row is kept for the record and hidden from the API). The new states ``pausing`` and ``paused``
need no schema change: ``jobs.status`` is a plain string column.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("deleted_at")
