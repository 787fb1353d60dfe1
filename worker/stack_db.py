"""A throw-away PostgreSQL schema for a service stack, and the database's first setup.

Used by the integration tests' ``postgres-redis`` stack and by ``mar bench soak``: each gets a
fresh schema (``DATABASE_URL`` selects it with ``search_path``), migrates it and creates one API
key; the schema is dropped afterwards.
"""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, text

from api.db import keys_repo
from api.db.session import init_db, make_engine, make_session_factory, session_scope
from api.settings import Settings

# environment variable -> Settings field, for the variables a stack sets
_ENV_FIELDS = {
    "MAR_STATE_DIR": "state_dir", "DATABASE_URL": "database_url", "BROKER_URL": "broker_url",
    "MAR_DATA_ROOTS": "data_roots", "MAR_CHECKPOINT_ROOT": "checkpoint_root",
    "MAR_LEASE_SECONDS": "lease_seconds", "MAR_HEARTBEAT_SECONDS": "heartbeat_seconds", "MAR_QUEUE": "queue",
    "MAR_POOLS": "pools",
}  # fmt: skip


class PgSchema:
    """A fresh schema ``<prefix>_<random>`` in the database of ``url``; ``self.url`` selects it."""

    def __init__(self, url: str, prefix: str = "mar_it"):
        self.name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self._admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.name}"'))
        self.url = f"{url}?options=-csearch_path%3D{self.name}"

    def drop(self) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{self.name}" CASCADE'))
        self._admin.dispose()


def settings_from_env(env: dict[str, str]) -> Settings:
    """The ``Settings`` the stack's processes build from ``env``."""
    return Settings(**{field_: env[var] for var, field_ in _ENV_FIELDS.items() if var in env})


def prepare_database(env: dict[str, str], key_name: str = "integration") -> str:
    """Create the stack's folders, migrate its database and create an API key; return the key."""
    settings = settings_from_env(env)
    settings.ensure_dirs()
    engine = make_engine(settings.database_url)
    try:
        init_db(engine)
        with session_scope(make_session_factory(engine)) as s:
            _, key = keys_repo.create_api_key(s, key_name)
        return key
    finally:
        engine.dispose()
