"""The embedded stack of ``mar up`` / ``mar demo``: prepare the state folder, start the parts.

``prepare_state()`` creates the folders, runs the migrations and makes sure a local API key
exists in ``{state}/api_key`` (mode 0600; reused while it is valid). ``start_stack()`` starts
the API, the workers and the reaper (``worker.stack.Stack``) and stops them on exit.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from api.db import keys_repo
from api.db.session import init_db, make_engine, make_session_factory, session_scope
from api.settings import get_settings
from worker.stack import Stack, _client_host, embedded_env, free_port

logger = logging.getLogger(__name__)

LOCAL_KEY_NAME = "local"


@dataclass(frozen=True)
class StateInfo:
    state_dir: Path
    api_key: str
    key_file: Path
    data_root: Path


def prepare_state() -> StateInfo:
    """Folders, schema at head, and the local API key (created on first use)."""
    settings = get_settings()
    settings.ensure_dirs()
    for root in settings.data_roots:
        root.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    try:
        init_db(engine)
        key_file = settings.state_dir / "api_key"
        sf = make_session_factory(engine)
        key = key_file.read_text().strip() if key_file.exists() else ""
        with session_scope(sf) as s:
            if not key or keys_repo.verify_api_key(s, key) is None:
                _, key = keys_repo.create_api_key(s, LOCAL_KEY_NAME)
                key_file.write_text(key + "\n")
                os.chmod(key_file, 0o600)
                logger.info("created API key %r in %s", LOCAL_KEY_NAME, key_file)
    finally:
        engine.dispose()
    return StateInfo(settings.state_dir, key, key_file, settings.data_roots[0])


@contextmanager
def start_stack(
    host: str, port: int, *, workers: int = 1, log_dir: Path | None = None, reaper_interval: float = 5.0
) -> Iterator[tuple[Stack, str]]:
    """Start API + ``workers`` workers + reaper; yield ``(stack, url)``; stop all on exit."""
    settings = get_settings()
    port = port or free_port(_client_host(host))
    stack = Stack(embedded_env(settings.state_dir), log_dir=log_dir)
    try:
        stack.start_api(host, port)
        for i in range(workers):
            stack.start_worker(name=f"worker-{i + 1}" if workers > 1 else "worker")
        stack.start_reaper(interval=reaper_interval)
        yield stack, f"http://{_client_host(host)}:{port}"
    finally:
        stack.stop()
