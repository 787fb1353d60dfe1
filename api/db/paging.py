"""Keyset pagination, newest first, over any table with ``created_at`` and a string ``id``.

A cursor is the url-safe base64 of ``"<created_at isoformat>|<id>"`` of the last row of a page.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from mar_core.errors import MarError

Row = TypeVar("Row")


class InvalidCursorError(MarError, ValueError):
    """A pagination cursor that this server did not hand out (HTTP 422, param ``cursor``)."""

    code = "invalid_cursor"
    exit_code = 2


def encode_cursor(row: Any) -> str:
    raw = f"{row.created_at.isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """``(created_at, id)`` of a cursor; ``InvalidCursorError`` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, row_id = raw.split("|", 1)
        created = datetime.fromisoformat(stamp)
        if created.tzinfo is None or not row_id:
            raise ValueError("bad cursor")
        return created, row_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidCursorError("cursor: not a cursor returned by this server", param="cursor") from None


def newest_first_page(
    s: Session, stmt: Select[tuple[Row]], model: Any, limit: int, cursor: str | None
) -> tuple[list[Row], str | None]:
    """One page of ``stmt`` (a ``select(model)`` with its filters) newest first; returns
    ``(rows, next_cursor)``, the cursor None on the last page."""
    if cursor:
        created, row_id = decode_cursor(cursor)
        stmt = stmt.where(
            or_(model.created_at < created, and_(model.created_at == created, model.id < row_id))
        )
    stmt = stmt.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)
    rows = list(s.execute(stmt).scalars())
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1])
    return rows, None
