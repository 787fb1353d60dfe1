"""Hashes of job specs: the one home of "canonical JSON, then sha256".

``spec_hash`` of a spec's JSON dict is stable across key order and across machines; fields in
``ignore`` do not count. Used for a run's fingerprint (a checkpoint resumes only its own spec),
the benchmark's cache keys and the API's idempotency check.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

# Fields that name or schedule a job but do not shape what it trains.
NOT_RUN_SHAPING = ("name", "max_attempts", "tracking", "priority")


def canonical_json(data: Any) -> str:
    """Sorted keys, no spaces: equal data gives equal text."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def spec_hash(data: dict[str, Any], ignore: Iterable[str] = ()) -> str:
    """sha256 hex of the canonical JSON of ``data`` without the top-level keys in ``ignore``."""
    skip = set(ignore)
    return hashlib.sha256(
        canonical_json({k: v for k, v in data.items() if k not in skip}).encode()
    ).hexdigest()


def run_fingerprint(data: dict[str, Any]) -> str:
    """The hash of everything in a spec's JSON dict that shapes the run (not its name)."""
    return spec_hash(data, ignore=NOT_RUN_SHAPING)
