"""Find a reachable PostgreSQL server for local tests and benchmarks (trust auth)."""

from __future__ import annotations

from sqlalchemy import create_engine, text


def find_postgres(host: str, port: int | str, db: str, users: tuple[str, ...]) -> tuple[str | None, str]:
    """The first ``postgresql+psycopg2`` URL (trying ``users`` in turn) that answers ``SELECT 1``,
    or ``(None, why)`` naming each user's failure."""
    errors = []
    for user in users:
        url = f"postgresql+psycopg2://{user}@{host}:{port}/{db}"
        eng = create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with eng.connect() as conn:
                conn.execute(text("SELECT 1"))
            return url, ""
        except Exception as e:  # noqa: BLE001 - any failure means "not reachable as this user"
            errors.append(f"{user}: {str(e).splitlines()[0]}")
        finally:
            eng.dispose()
    return None, "; ".join(errors)
