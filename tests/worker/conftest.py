"""Shared fixtures of the worker's unit tests."""

from __future__ import annotations

import pytest

from api.db.session import init_db, make_engine, make_session_factory


@pytest.fixture
def sf(tmp_path):
    """A session factory on a fresh, migrated SQLite database in ``tmp_path``."""
    engine = make_engine(f"sqlite:///{tmp_path / 'worker.db'}")
    init_db(engine)
    yield make_session_factory(engine)
    engine.dispose()
