"""API keys (created once: the plaintext is shown only then; stored as sha256 hex) and the
projects they act in."""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.db.models import DEFAULT_PROJECT, ApiKey, Project, utcnow

KEY_PREFIX = "mar_"
PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def hash_key(key: str) -> str:
    """sha256 hex of a plaintext key."""
    return hashlib.sha256(key.encode()).hexdigest()


def check_project_name(name: str) -> str:
    """``name`` if it is a valid project name (lowercase letters, digits, ``-``, ``_``; 1-64),
    else ``ValueError`` saying so."""
    if not PROJECT_NAME.fullmatch(name):
        raise ValueError(f"project name {name!r}: use 1-64 lowercase letters, digits, '-' or '_'")
    return name


def ensure_project(s: Session, name: str) -> Project:
    """The project ``name``, created when new (flushed)."""
    project = s.get(Project, check_project_name(name))
    if project is None:
        project = Project(name=name, created_at=utcnow())
        s.add(project)
        s.flush()
    return project


def project_exists(s: Session, name: str) -> bool:
    return s.get(Project, name) is not None


def create_api_key(
    s: Session, name: str, project: str = DEFAULT_PROJECT, admin: bool = False, high_priority: bool = False
) -> tuple[ApiKey, str]:
    """A new key named ``name`` acting in ``project`` (created when new; an ``admin`` key acts on
    every project; ``high_priority``: it may submit "high" jobs, as admin keys may); returns the
    row and the plaintext key (never stored)."""
    ensure_project(s, project)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name,
        project=project,
        admin=admin,
        high_priority=high_priority,
        key_hash=hash_key(key),
        prefix=key[:12],
        created_at=utcnow(),
    )
    s.add(row)
    s.flush()
    return row, key


def list_api_keys(s: Session) -> list[ApiKey]:
    """Every key, oldest first (revoked ones included)."""
    return list(s.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)).scalars())


def revoke_api_key(s: Session, key_id: str) -> bool:
    """Revoke a key by id; False when unknown or already revoked."""
    stmt = (
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return s.execute(stmt).rowcount == 1


def is_active(s: Session, key_id: str) -> bool:
    """Whether the key with this id exists and is not revoked."""
    revoked = s.execute(select(ApiKey.revoked_at).where(ApiKey.id == key_id)).one_or_none()
    return revoked is not None and revoked[0] is None


def verify_api_key(s: Session, key: str) -> ApiKey | None:
    """The active key matching ``key``, or None (unknown or revoked)."""
    row = s.execute(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    return row
