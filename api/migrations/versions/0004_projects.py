"""Projects: every API key, job and uploaded dataset belongs to one; idempotency keys per project.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Existing keys, jobs and datasets move to the project ``default``; existing keys stay non-admin.
The ``Idempotency-Key`` of a job was unique across the service (a key replaying another team's
key got that team's job); it is now unique per project: ``jobs.idempotency_scope`` holds
sha256(project NUL key) under a unique index, and ``jobs.idempotency_key`` (whose unique
constraint SQLite cannot drop without rebuilding the table) is no longer written and is cleared.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DEFAULT = "default"


def scope_hash(project: str, key: str) -> str:
    """A frozen copy of ``api.db.jobs_repo.idempotency_scope`` (a migration never imports the code)."""
    return hashlib.sha256(f"{project}\x00{key}".encode()).hexdigest()


def upgrade() -> None:
    projects = op.create_table(
        "projects",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_projects"),
    )
    now = datetime.now(timezone.utc)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    op.bulk_insert(projects, [{"name": DEFAULT, "created_at": now}])
    for table in ("api_keys", "jobs", "datasets"):
        op.add_column(table, sa.Column("project", sa.String(64), nullable=False, server_default=DEFAULT))
    op.add_column("api_keys", sa.Column("admin", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("ix_jobs_project_created_at_id", "jobs", ["project", "created_at", "id"])
    op.create_index("ix_datasets_project", "datasets", ["project"])
    op.add_column("jobs", sa.Column("idempotency_scope", sa.String(64), nullable=True))
    op.create_index("ix_jobs_idempotency_scope", "jobs", ["idempotency_scope"], unique=True)
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.String),
        sa.column("idempotency_key", sa.String),
        sa.column("idempotency_scope", sa.String),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(jobs.c.id, jobs.c.idempotency_key).where(jobs.c.idempotency_key.is_not(None))
    )
    for job_id, key in rows.fetchall():
        bind.execute(
            jobs.update()
            .where(jobs.c.id == job_id)
            .values(idempotency_scope=scope_hash(DEFAULT, key), idempotency_key=None)
        )


def downgrade() -> None:
    op.drop_index("ix_jobs_idempotency_scope", table_name="jobs")
    op.drop_index("ix_datasets_project", table_name="datasets")
    op.drop_index("ix_jobs_project_created_at_id", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("idempotency_scope")
        batch.drop_column("project")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("project")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("admin")
        batch.drop_column("project")
    op.drop_table("projects")
