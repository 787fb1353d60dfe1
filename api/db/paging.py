"""Keyset pagination, newest first, over any table with ``created_at`` and a string ``id``.

A cursor is ``"<created_at in microseconds since the epoch>.<id>"`` of the last row of a page:
every string of ``CURSOR_PATTERN`` is one (an unknown one pages from where it points), so the
OpenAPI document says exactly which cursors the server takes.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from mar_core.errors import MarError

Row = TypeVar("Row")

# 17 digits of microseconds reach the year 5138, within ``datetime``'s range
CURSOR_PATTERN = r"^[0-9]{1,17}\.[A-Za-z0-9_-]{1,64}$"
_CURSOR = re.compile(CURSOR_PATTERN)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


class InvalidCursorError(MarError, ValueError):
    """A pagination cursor that this server did not hand out (HTTP 422, param ``cursor``)."""

    code = "invalid_cursor"
    exit_code = 2


def encode_cursor(row: Any) -> str:
    return f"{(row.created_at - _EPOCH) // _MICROSECOND}.{row.id}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """``(created_at, id)`` of a cursor; ``InvalidCursorError`` for anything else."""
    if not _CURSOR.match(cursor):
        raise InvalidCursorError("cursor: not a cursor returned by this server", param="cursor")
    micros, row_id = cursor.split(".", 1)
    return _EPOCH + int(micros) * _MICROSECOND, row_id


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
