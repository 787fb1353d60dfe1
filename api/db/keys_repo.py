"""API keys: created once (the plaintext is shown only then), stored as sha256 hex."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.db.models import ApiKey, utcnow

KEY_PREFIX = "mar_"


def hash_key(key: str) -> str:
    """sha256 hex of a plaintext key."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(s: Session, name: str) -> tuple[ApiKey, str]:
    """A new key named ``name``; returns the row and the plaintext key (never stored)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, key_hash=hash_key(key), prefix=key[:12], created_at=utcnow())
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


def verify_api_key(s: Session, key: str) -> ApiKey | None:
    """The active key matching ``key``, or None (unknown or revoked)."""
    row = s.execute(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    return row
