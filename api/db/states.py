"""Job states and the allowed transitions (``docs/service-design.md``, "Job states").

Terminal states never change. ``phase`` (train, eval, export) is a field, not a state.
"""

from __future__ import annotations

from mar_core.errors import MarError

QUEUED = "queued"
STARTING = "starting"
RUNNING = "running"
CANCELLING = "cancelling"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"

ALL_STATES: tuple[str, ...] = (QUEUED, STARTING, RUNNING, CANCELLING, SUCCEEDED, FAILED, CANCELLED)
TERMINAL: frozenset[str] = frozenset({SUCCEEDED, FAILED, CANCELLED})
ACTIVE: frozenset[str] = frozenset({STARTING, RUNNING, CANCELLING})  # a worker holds a lease

TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({STARTING, CANCELLED}),
    STARTING: frozenset({RUNNING, QUEUED, CANCELLING, SUCCEEDED, FAILED, CANCELLED}),
    RUNNING: frozenset({QUEUED, CANCELLING, SUCCEEDED, FAILED, CANCELLED}),
    CANCELLING: frozenset({SUCCEEDED, FAILED, CANCELLED}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}


def can_transition(src: str, dst: str) -> bool:
    """Whether ``src -> dst`` is allowed."""
    return dst in TRANSITIONS.get(src, frozenset())


def sources_of(dst: str) -> frozenset[str]:
    """Every state from which ``dst`` may be entered."""
    return frozenset(s for s, targets in TRANSITIONS.items() if dst in targets)


class TransitionError(MarError):
    """A state change was refused because the job is not in an expected state (HTTP 409)."""

    code = "invalid_transition"
    exit_code = 1

    def __init__(self, message: str, current: str | None = None):
        super().__init__(message, param=None)
        self.current = current


class JobNotFoundError(MarError, LookupError):
    """No job has this id (HTTP 404)."""

    code = "not_found"
    exit_code = 1
