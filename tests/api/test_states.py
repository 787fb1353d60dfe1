"""The job state table (``api.db.states``) and its enforcement by the jobs repository: every
pair of states is tried, each legal change passes and each illegal one raises, through the
checking function and through the repository's one status writer; the public repository
functions never make a change outside the table, from any state."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from api.db import claims_repo, states, transitions
from api.db import jobs_repo as repo
from api.db.models import Job, utcnow
from api.db.session import session_scope
from api.db.states import IllegalTransition, JobState, RunOutcome
from mar_core.spec import JobSpec

PAIRS = list(itertools.product(JobState, JobState))
LEGAL = [(a, b) for a, b in PAIRS if b in states.TRANSITIONS[a]]
ILLEGAL = [(a, b) for a, b in PAIRS if b not in states.TRANSITIONS[a]]
SPEC = JobSpec.model_validate({"kind": "train", "dataset": {"path": "coco"}, "max_attempts": 2})


def _id(pair: tuple[JobState, JobState]) -> str:
    return f"{pair[0]}->{pair[1]}"


# --------------------------------------------------------------------------- the table


def test_values_are_the_stored_strings():
    """The database and the API hold these strings: changing one needs a migration."""
    assert [s.value for s in JobState] == [
        "queued", "starting", "running", "cancelling", "pausing", "paused", "succeeded", "failed",
        "cancelled",
    ]  # fmt: skip
    assert [o.value for o in RunOutcome] == [
        "succeeded",
        "failed",
        "cancelled",
        "paused",
        "skipped",
        "lost",
        "released",
    ]
    assert states.ALL_STATES == tuple(JobState)
    assert {RunOutcome(t) for t in states.TERMINAL} == {
        RunOutcome.SUCCEEDED,
        RunOutcome.FAILED,
        RunOutcome.CANCELLED,
    }
    assert not {RunOutcome.SKIPPED, RunOutcome.LOST, RunOutcome.RELEASED} & set(states.ALL_STATES)
    # str-valued: equal to, hashed as, printed as and JSON-encoded as the plain string
    assert JobState.QUEUED == "queued" and {"queued": 1}[JobState.QUEUED] == 1
    assert str(JobState.RUNNING) == f"{JobState.RUNNING}" == "running"
    assert "succeeded" in states.TERMINAL and "starting" in states.ACTIVE and "pausing" in states.ACTIVE
    assert states.UNFINISHED == set(JobState) - states.TERMINAL and "paused" not in states.ACTIVE


def test_transition_table():
    assert set(states.ALL_STATES) == set(states.TRANSITIONS)
    assert all(not states.TRANSITIONS[t] for t in states.TERMINAL)
    assert all(states.TRANSITIONS[a] for a in JobState if a not in states.TERMINAL)
    assert all(a not in states.TRANSITIONS[a] for a in JobState)  # no self-loops
    assert states.sources_of("starting") == {"queued"}
    assert states.sources_of("running") == {"starting"}
    assert states.sources_of("queued") == {"starting", "running", "paused"}
    assert states.sources_of("cancelled") == {"queued", "starting", "running", "cancelling", "paused"}
    assert states.sources_of("pausing") == {"starting", "running"}
    assert states.sources_of("paused") == {"queued", "pausing"}
    assert states.TRANSITIONS[JobState.PAUSED] == {"queued", "cancelled"}
    assert states.can_transition("running", "queued") and not states.can_transition("queued", "running")
    for b in JobState:
        assert states.sources_of(b) == {a for a in JobState if states.can_transition(a, b)}
    assert len(LEGAL) == 25 and len(LEGAL) + len(ILLEGAL) == 81


@pytest.mark.parametrize("pair", LEGAL, ids=_id)
def test_check_transition_passes_each_legal_change(pair):
    a, b = pair
    assert states.can_transition(a, b)
    assert states.check_transition(a, b) is b
    assert states.check_transition(a.value, b.value) is b  # plain strings, as read from the database


@pytest.mark.parametrize("pair", ILLEGAL, ids=_id)
def test_check_transition_raises_on_each_illegal_change(pair):
    a, b = pair
    assert not states.can_transition(a, b)
    with pytest.raises(IllegalTransition) as err:
        states.check_transition(a.value, b.value)
    e = err.value
    assert f"{a} -> {b}" in e.message and (e.current, e.new) == (a, b)
    assert isinstance(e, states.TransitionError) and e.code == "invalid_transition"


@pytest.mark.parametrize(("a", "b"), [("queued", "sleeping"), ("done", "queued"), ("", "")])
def test_unknown_states_are_illegal(a, b):
    with pytest.raises(IllegalTransition, match="unknown state"):
        states.check_transition(a, b)


# --------------------------------------------------------------------------- the repository


def _job_in(factory: sessionmaker[Session], state: JobState) -> str:
    """A job put straight into ``state`` (bypassing the repository), held by ``w1`` with an
    expired lease and attempts left: every repository function has something to try."""
    with session_scope(factory) as s:
        job_id = repo.create_job(s, SPEC).id
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                status=state.value,
                worker_id="w1",
                attempt=1,
                lease_expires_at=utcnow() - timedelta(seconds=5),
            )
        )
    return job_id


def _status(factory: sessionmaker[Session], job_id: str) -> str:
    with session_scope(factory) as s:
        job = repo.get_job(s, job_id, deleted=True)
        assert job is not None
        return job.status


@pytest.mark.parametrize("pair", PAIRS, ids=_id)
def test_repo_status_writer_enforces_the_table(factory, pair):
    """``transitions.change_status``, the only writer of ``status``, on every pair."""
    a, b = pair
    job_id = _job_in(factory, a)
    with session_scope(factory) as s:
        if b in states.TRANSITIONS[a]:
            assert transitions.change_status(s, job_id, b, {}, sources=[a])
        else:
            with pytest.raises(IllegalTransition, match=f"{a} -> {b}"):
                transitions.change_status(s, job_id, b, {}, sources=[a])
    assert _status(factory, job_id) == (b if b in states.TRANSITIONS[a] else a)


def test_repo_field_updates_cannot_change_status(factory):
    job_id = _job_in(factory, JobState.RUNNING)
    with session_scope(factory) as s, pytest.raises(ValueError, match="change_status"):
        transitions.update_fields(s, job_id, states.ACTIVE, {"status": JobState.QUEUED.value})
    assert _status(factory, job_id) == "running"


def _cancel(s: Session, job_id: str) -> None:
    try:
        repo.request_cancel(s, job_id)
    except states.TransitionError:
        pass  # terminal: refused, nothing written


def _refusable(fn: Callable[[Session, str], object]) -> Callable[[Session, str], None]:
    """``fn``, where a refusal (``TransitionError``: nothing written) is a no-op."""

    def call(s: Session, job_id: str) -> None:
        try:
            fn(s, job_id)
        except states.TransitionError:
            pass

    return call


OPS: dict[str, Callable[[Session, str], object]] = {
    "claim_job": lambda s, j: claims_repo.claim_job(s, j, "w2", 30),
    "mark_running": lambda s, j: claims_repo.mark_running(s, j, "w1"),
    "release_job": lambda s, j: claims_repo.release_job(s, j, "w1"),
    "finish_succeeded": lambda s, j: claims_repo.finish_job(s, j, "w1", "succeeded"),
    "finish_failed": lambda s, j: claims_repo.finish_job(s, j, "w1", "failed"),
    "finish_cancelled": lambda s, j: claims_repo.finish_job(s, j, "w1", "cancelled"),
    "request_cancel": _cancel,
    "requeue_expired": lambda s, j: claims_repo.requeue_expired(s),
    "request_pause": _refusable(repo.request_pause),
    "park_job": lambda s, j: claims_repo.park_job(s, j, "w1", step=3),
    "resume_job": _refusable(repo.resume_job),
    "mark_deleted": _refusable(repo.mark_deleted),
}

# What each function does from each state (absent: nothing changes). The sets they act from
# are derived from the table in ``jobs_repo``; this pins the result.
EXPECTED: dict[str, dict[JobState, JobState]] = {
    "claim_job": {JobState.QUEUED: JobState.STARTING},
    "mark_running": {JobState.STARTING: JobState.RUNNING},
    "release_job": {JobState.STARTING: JobState.QUEUED, JobState.RUNNING: JobState.QUEUED},
    **{f"finish_{t}": {a: JobState(t) for a in states.ACTIVE} for t in ("succeeded", "failed")},
    # a pausing run that stopped is parked, never finished as cancelled
    "finish_cancelled": {a: JobState.CANCELLED for a in states.ACTIVE - {JobState.PAUSING}},
    "request_cancel": {
        JobState.QUEUED: JobState.CANCELLED,
        JobState.STARTING: JobState.CANCELLING,
        JobState.RUNNING: JobState.CANCELLING,
        JobState.PAUSING: JobState.CANCELLING,
        JobState.PAUSED: JobState.CANCELLED,
    },
    "requeue_expired": {
        JobState.STARTING: JobState.QUEUED,
        JobState.RUNNING: JobState.QUEUED,
        JobState.CANCELLING: JobState.CANCELLED,
        JobState.PAUSING: JobState.PAUSED,
    },
    "request_pause": {
        JobState.QUEUED: JobState.PAUSED,
        JobState.STARTING: JobState.PAUSING,
        JobState.RUNNING: JobState.PAUSING,
    },
    "park_job": {JobState.PAUSING: JobState.PAUSED},
    "resume_job": {JobState.PAUSED: JobState.QUEUED},
    "mark_deleted": {},  # not a change of state: a finished job stays as it was
}


@pytest.mark.parametrize("state", list(JobState), ids=str)
@pytest.mark.parametrize("op", list(OPS))
def test_repo_functions_change_state_only_along_the_table(factory, op, state):
    job_id = _job_in(factory, state)
    with session_scope(factory) as s:
        OPS[op](s, job_id)
    after = _status(factory, job_id)
    assert after == state or states.can_transition(state, after), f"{op}: {state} -> {after}"
    assert after == EXPECTED[op].get(state, state)
