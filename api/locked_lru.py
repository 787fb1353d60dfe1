"""A bounded least-recently-used map that route handlers (a thread pool) may share."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

from cachetools import LRUCache


class LockedLRU:
    """``get(key)`` / ``put(key, value)`` under a lock; at most ``maxsize`` in total, each value
    counting ``getsizeof(value)`` (1 without it). ``maxsize`` 0 keeps nothing."""

    def __init__(self, maxsize: int, getsizeof: Callable[[Any], int] | None = None):
        self._cache: LRUCache | None = LRUCache(maxsize=maxsize, getsizeof=getsizeof) if maxsize > 0 else None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return 0 if self._cache is None else len(self._cache)

    def get(self, key: Hashable) -> Any:
        if self._cache is None:
            return None
        with self._lock:
            return self._cache.get(key)

    def put(self, key: Hashable, value: Any) -> None:
        if self._cache is None or self._cache.getsizeof(value) > self._cache.maxsize:
            return
        with self._lock:
            self._cache[key] = value
