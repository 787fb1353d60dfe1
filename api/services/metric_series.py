"""The body of ``GET /jobs/{id}/metrics`` from metric rows: two shapes and a point budget.

- ``points``: ``{name: [{step, value, time}, ...]}`` (the original shape);
- ``columns``: ``{name: {"step": [...], "value": [...]}}``, about 3x smaller and without the
  per-point time (what a plot needs);
- ``max_points``: each series thinned to at most that many points, evenly spaced by position,
  its first and last points always kept.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Literal

SeriesFormat = Literal["points", "columns"]


def iso_utc(t: datetime) -> str:
    """``2026-11-24T23:06:54.727371Z``, as pydantic writes an aware UTC datetime."""
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def kept_positions(n: int, max_points: int | None) -> range | list[int]:
    """Positions of ``n`` points to keep: all, or ``max_points`` (>= 2) evenly spaced ones with
    the first and the last."""
    if max_points is None or n <= max_points:
        return range(n)
    return sorted({round(i * (n - 1) / (max_points - 1)) for i in range(max_points)})


def _grouped(rows: Sequence[Sequence[Any]]) -> dict[str, list[Sequence[Any]]]:
    by_name: dict[str, list[Sequence[Any]]] = {}
    for row in rows:
        by_name.setdefault(row[0], []).append(row)
    return by_name


def series_body(
    job_id: str, rows: Sequence[Sequence[Any]], fmt: SeriesFormat, max_points: int | None
) -> bytes:
    """JSON bytes of ``{"job_id", "series"}``; ``rows``: ``(name, step, value[, time])`` ordered
    by (name, step) (``time`` only for ``points``)."""
    series: dict[str, Any] = {}
    for name, group in _grouped(rows).items():
        kept = [group[i] for i in kept_positions(len(group), max_points)]
        if fmt == "columns":
            series[name] = {"step": [r[1] for r in kept], "value": [r[2] for r in kept]}
        else:
            series[name] = [{"step": r[1], "value": r[2], "time": iso_utc(r[3])} for r in kept]
    body = {"job_id": job_id, "series": series}
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
