"""Job states, the worker's run outcomes and the allowed transitions: the one place they are
spelled (README, "Using it": the states line; `mar` prints them the same way).

Both the API and the worker import this module (it is torch-free; ``api`` never imports
``worker``). Members are ``str``-valued, so the database keeps the same strings (``"queued"``
...), a member compares equal to its string, and one read back from the database (a plain
``str``) finds its member in every set and table here.

Every state change of ``api.db.jobs_repo`` goes through ``TRANSITIONS``: its conditional
``UPDATE ... WHERE status IN (...)`` takes its sources from ``sources_of``, and a change from a
known state is checked with ``check_transition``, which raises ``IllegalTransition``.
Terminal states never change. ``phase`` (train, eval, export) is a field, not a state.

Pausing (``POST /jobs/{id}/pause``): a queued job is ``paused`` at once; a starting or running
one is ``pausing`` until its worker has stopped the run at a checkpoint (or the reaper settles
it when the worker is gone), then ``paused``, holding no worker. Resume puts it back to
``queued``; the next claim resumes from the checkpoint. A paused job may be cancelled at once.
"""

from __future__ import annotations

from enum import Enum

from mar_core.errors import MarError


class _StrValue(str, Enum):
    """A ``str`` enum whose ``str()`` and f-string form is its value (``enum.StrEnum`` from 3.11)."""

    def __str__(self) -> str:
        return str.__str__(self)

    __format__ = str.__format__


class JobState(_StrValue):
    """The ``status`` of a job row."""

    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    CANCELLING = "cancelling"
    PAUSING = "pausing"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RunOutcome(_StrValue):
    """How one run of a job ended for the worker: the child's result file, ``Supervisor.run``
    and ``run_job_once``. The three terminal job states, ``paused`` (the supervisor's only: the
    run stopped at a checkpoint on a pause request), plus three that are not job states."""

    SUCCEEDED = JobState.SUCCEEDED.value
    FAILED = JobState.FAILED.value
    CANCELLED = JobState.CANCELLED.value
    PAUSED = JobState.PAUSED.value
    SKIPPED = "skipped"  # not ours to run (duplicate delivery, cancelled or taken, worker stopping)
    LOST = "lost"  # the lease was lost: someone else owns the job now
    RELEASED = "released"  # the worker is shutting down: the job went back to the queue


# Short names, as used across the service (``states.QUEUED``).
QUEUED = JobState.QUEUED
STARTING = JobState.STARTING
RUNNING = JobState.RUNNING
CANCELLING = JobState.CANCELLING
PAUSING = JobState.PAUSING
PAUSED = JobState.PAUSED
SUCCEEDED = JobState.SUCCEEDED
FAILED = JobState.FAILED
CANCELLED = JobState.CANCELLED

ALL_STATES: tuple[JobState, ...] = tuple(JobState)
TERMINAL: frozenset[JobState] = frozenset({SUCCEEDED, FAILED, CANCELLED})
# a worker holds a lease
ACTIVE: frozenset[JobState] = frozenset({STARTING, RUNNING, CANCELLING, PAUSING})
UNFINISHED: frozenset[JobState] = frozenset(ALL_STATES) - TERMINAL  # may still run (and read its inputs)

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    QUEUED: frozenset({STARTING, CANCELLED, PAUSED}),
    STARTING: frozenset({RUNNING, QUEUED, CANCELLING, PAUSING, SUCCEEDED, FAILED, CANCELLED}),
    RUNNING: frozenset({QUEUED, CANCELLING, PAUSING, SUCCEEDED, FAILED, CANCELLED}),
    CANCELLING: frozenset({SUCCEEDED, FAILED, CANCELLED}),
    # stopped at a checkpoint (or the lease ran out) -> paused; it may also finish, or be cancelled
    PAUSING: frozenset({PAUSED, CANCELLING, SUCCEEDED, FAILED}),
    PAUSED: frozenset({QUEUED, CANCELLED}),  # resume; cancel at once
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}


class TransitionError(MarError):
    """A state change was refused because the job is not in an expected state (HTTP 409)."""

    code = "invalid_transition"
    exit_code = 1

    def __init__(self, message: str, current: str | None = None):
        super().__init__(message, param=None)
        self.current = current


class IllegalTransition(TransitionError):
    """A change ``current -> new`` that ``TRANSITIONS`` does not allow (or of an unknown state).

    Raised before anything is written; reaching it from a request is a bug in the service."""

    def __init__(self, current: str, new: str):
        allowed = TRANSITIONS.get(current)  # type: ignore[call-overload]
        if current not in ALL_STATES or new not in ALL_STATES:
            why = f"unknown state {current!s}" if current not in ALL_STATES else f"unknown state {new!s}"
        elif not allowed:
            why = f"{current} is terminal"
        else:
            why = f"from {current} only to {', '.join(sorted(allowed))}"
        super().__init__(f"illegal job state transition {current} -> {new} ({why})", current=str(current))
        self.new = str(new)


def can_transition(src: str, dst: str) -> bool:
    """Whether ``src -> dst`` is allowed."""
    return dst in TRANSITIONS.get(src, frozenset())  # type: ignore[call-overload]


def check_transition(current: str, new: str) -> JobState:
    """``new`` as a ``JobState`` when ``current -> new`` is allowed; else ``IllegalTransition``."""
    if not can_transition(current, new):
        raise IllegalTransition(current, new)
    return JobState(new)


def sources_of(dst: str) -> frozenset[JobState]:
    """Every state from which ``dst`` may be entered (the ``WHERE status IN`` of a change)."""
    return frozenset(s for s, targets in TRANSITIONS.items() if dst in targets)


class JobNotFoundError(MarError, LookupError):
    """No job has this id (HTTP 404)."""

    code = "not_found"
    exit_code = 1
