"""Fixtures of the API tests: settings in tmp_path, a migrated database (SQLite, and
PostgreSQL for the repository tests), a TestClient with an API key, and dataset folders.

PostgreSQL: 127.0.0.1:5432, database ``test``, user ``postgres`` or ``root`` (trust auth); each
test session works in its own schema, dropped at the end. Unreachable: the PostgreSQL cases fail
when ``CI=true`` and are skipped otherwise.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from api.db.probe import find_postgres
from api.db.session import init_db, make_engine, make_session_factory
from api.settings import Settings

PG_HOST = os.environ.get("MAR_TEST_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("MAR_TEST_PG_PORT", "5432")
PG_DB = os.environ.get("MAR_TEST_PG_DB", "test")
PG_USERS = ("postgres", "root")
TABLES = (
    "metrics",
    "events",
    "artifacts",
    "jobs",
    "datasets",
    "api_keys",
    "run_segments",
    "workers",
    "project_quotas",
)


def _find_postgres() -> tuple[str | None, str]:
    return find_postgres(PG_HOST, PG_PORT, PG_DB, PG_USERS)


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[Engine]:
    """A migrated PostgreSQL engine in a schema of its own (dropped after the session)."""
    url, why = _find_postgres()
    if url is None:
        msg = f"PostgreSQL unreachable at {PG_HOST}:{PG_PORT}/{PG_DB} ({why})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " -- CI=true requires it", pytrace=False)
        pytest.skip(msg)
    schema = f"mar_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"}, pool_size=10)
    try:
        init_db(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database on each dialect."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'repo.db'}")
        init_db(eng)
        yield eng
        eng.dispose()
        return
    eng = request.getfixturevalue("pg_engine")
    yield eng
    with eng.begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(TABLES) + " RESTART IDENTITY CASCADE"))


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


# --------------------------------------------------------------------------- datasets


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 12), (40, 80, 120)).save(path)


def make_coco(root: Path, splits: tuple[str, ...] = ("train", "val")) -> Path:
    """A COCO-layout folder: per split one 16x12 image with one box."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split in splits:
        _image(root / split / "a.png")
        doc = {
            "images": [{"id": 1, "file_name": "a.png", "width": 16, "height": 12}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 8, 6]}],
            "categories": [{"id": 1, "name": "thing"}],
        }
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return root


def make_voc(root: Path, splits: tuple[str, ...] = ("train", "val")) -> Path:
    """A VOC-layout folder: one 16x12 image with one box, listed in every split."""
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    _image(root / "JPEGImages" / "a.png")
    (root / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.png</filename><size><width>16</width><height>12</height></size>"
        "<object><name>thing</name><bndbox><xmin>3</xmin><ymin>3</ymin><xmax>10</xmax><ymax>8</ymax>"
        "</bndbox></object></annotation>"
    )
    for split in splits:
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("a\n")
    return root


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-default settings in tmp_path, with a COCO and a VOC dataset under the data root."""
    st = Settings(state_dir=tmp_path / "state", lease_seconds=30)
    st.ensure_dirs()
    make_coco(st.data_roots[0] / "coco")
    make_voc(st.data_roots[0] / "voc")
    return st


@pytest.fixture
def teacher(settings: Settings) -> Path:
    """A teacher checkpoint file inside the checkpoint root (never unpickled by the API)."""
    assert settings.checkpoint_root is not None
    p = settings.checkpoint_root / "teacher.pt"
    p.write_bytes(b"not really a checkpoint")
    return p


def train_spec(**over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "kind": "train",
        "dataset": {"format": "coco", "path": "coco"},
        "train": {"iterations": 5},
    }
    spec.update(over)
    return spec


def distill_spec(teacher: Path, **over: Any) -> dict[str, Any]:
    spec = train_spec(kind="distill", teacher={"checkpoint": str(teacher)})
    spec.update(over)
    return spec


# --------------------------------------------------------------------------- the HTTP app


@pytest.fixture
def app(settings: Settings):
    """The app on a temp SQLite database and a ``filesystem://`` broker in tmp_path."""
    from api.main import create_app

    application = create_app(settings)
    application.state.sse_poll_seconds = 0.02
    return application


@pytest.fixture
def client(app) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


@pytest.fixture
def db(app, client) -> sessionmaker[Session]:
    """The app's session factory (schema migrated by the client's startup)."""
    return app.state.session_factory


@pytest.fixture
def api_key(db: sessionmaker[Session]) -> str:
    from api.db.keys_repo import create_api_key
    from api.db.session import session_scope

    with session_scope(db) as s:
        _, key = create_api_key(s, "tests")
    return key


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def broker_messages(settings: Settings) -> list[dict[str, Any]]:
    """Celery messages waiting in the ``filesystem://`` broker: ``[{"task", "args"}]``."""
    import base64

    out = []
    for f in sorted((settings.broker_dir / "queue").glob("*.msg")):
        msg = json.loads(f.read_text())
        body = json.loads(base64.b64decode(msg["body"]))
        out.append({"task": msg["headers"]["task"], "args": body[0], "queue": f.name.split(".")[-2]})
    return out


def error_params(resp: Any) -> list[str | None]:
    """The ``param`` of every error item of a response."""
    return [d["param"] for d in resp.json()["detail"]]
