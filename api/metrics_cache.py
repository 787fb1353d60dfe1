"""Serialised metric series of ``GET /jobs/{id}/metrics``, kept per API process.

A key holds the job id, its metrics revision (``jobs.metrics_rev``, one more per metric write)
and the query, so an entry is never stale: a new write makes a new key and the old one ages out.
Bounded by bytes (``MAR_METRICS_CACHE_BYTES``), least recently used first out; route handlers run
in a thread pool, hence the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

from cachetools import LRUCache


class MetricsCache:
    """``get_or_build(key, build)``: the cached body of ``key``, or ``build()`` stored."""

    def __init__(self, max_bytes: int):
        self._cache: LRUCache[Hashable, bytes] | None = (
            LRUCache(maxsize=max_bytes, getsizeof=len) if max_bytes > 0 else None
        )
        self._lock = threading.Lock()

    def get_or_build(self, key: Hashable, build: Callable[[], bytes]) -> bytes:
        if self._cache is None:
            return build()
        with self._lock:
            body = self._cache.get(key)
        if body is None:
            body = build()
            if len(body) <= self._cache.maxsize:
                with self._lock:
                    self._cache[key] = body
        return body
