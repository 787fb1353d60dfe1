"""Serialised metric series of ``GET /jobs/{id}/metrics``, kept per API process.

A key holds the job id, its metrics revision (``jobs.metrics_rev``, one more per metric write)
and the query, so an entry is never stale: a new write makes a new key and the old one ages out.
Bounded by bytes (``MAR_METRICS_CACHE_BYTES``), least recently used first out.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from api.locked_lru import LockedLRU


class MetricsCache:
    """``get_or_build(key, build)``: the cached body of ``key``, or ``build()`` stored."""

    def __init__(self, max_bytes: int):
        self.entries = LockedLRU(max_bytes, getsizeof=len)

    def get_or_build(self, key: Hashable, build: Callable[[], bytes]) -> bytes:
        body = self.entries.get(key)
        if body is None:
            body = build()
            self.entries.put(key, body)
        return body
