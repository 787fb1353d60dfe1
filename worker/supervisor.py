"""Run one claimed job in a fresh child process and watch over it.

The worker (a Celery task thread) never trains itself. It starts
``python -m worker.child JOB_ID ...`` with ``start_new_session=True`` (its own process group, not
a daemon of the Celery pool), then loops until the child exits:

- every ``heartbeat_seconds`` it renews the lease; when the renewal is refused the lease was lost
  (the reaper re-queued the job and another worker may own it now): it SIGKILLs the child's
  group at once and reports nothing, the job is no longer its own;
- every ``cancel_poll_seconds`` it asks the database whether a cancel or a pause was requested;
  then it sends SIGTERM to the child (which writes a checkpoint and exits) and SIGKILLs the group
  after ``grace_seconds``. A paused run is parked (pausing -> paused) and the task ends, freeing
  the worker; a resume re-queues it. A warm shutdown of the worker does the same, then releases
  the job (running -> queued) and the task sends it a new nudge; the next claim resumes from that
  checkpoint. If the release cannot reach the database, the reaper re-queues the job when its
  lease runs out.

SIGTERM goes to the group leader only: the child's handler turns it into ``should_stop()``,
and its DataLoader workers / ranks stop with it. Signalling the whole group would kill
DataLoader workers first and turn a clean stop into a crash. SIGKILL does go to the group.

The child reports how it ended in a result file (``worker.result``); the supervisor maps it to
``finish_job(... succeeded | failed(error) | cancelled)``. No result file means the child died
without a word: the job fails with ``process_crashed`` and the tail of the child's log.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from api.db.states import JobState, RunOutcome
from worker import result as res
from worker.procs import signal_group, stop_process_group
from worker.store import Claim, JobStore

logger = logging.getLogger(__name__)


@dataclass
class SupervisorConfig:
    lease_seconds: float = 60.0
    heartbeat_seconds: float = 10.0
    cancel_poll_seconds: float = 1.0
    grace_seconds: float = 60.0
    poll_seconds: float = 0.2
    python: str = sys.executable
    child_module: str = "worker.child"
    extra_env: dict[str, str] = field(default_factory=dict)


def crash_error(returncode: int | None, log_path: Path, max_chars: int = 2000) -> dict:
    """The structured error of a child that exited without writing its result."""
    if returncode is None:
        how = "could not be reaped"
    elif returncode < 0:
        try:
            how = f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"was killed by signal {-returncode}"
    else:
        how = f"exited with code {returncode}"
    tail = ""
    try:
        tail = log_path.read_text(errors="replace")[-max_chars:]
    except OSError:
        pass
    message = f"the training process {how} without reporting a result"
    if tail.strip():
        message += f"; last output:\n{tail}"
    return {"code": "process_crashed", "message": message, "param": None}


class Supervisor:
    """Supervise one attempt of one job (already claimed by ``worker_id``)."""

    def __init__(
        self,
        claim: Claim,
        worker_id: str,
        workdir: Path,
        store: JobStore,
        config: SupervisorConfig,
        *,
        worker_stopping: Callable[[], bool] = lambda: False,
    ):
        self.claim = claim
        self.job_id = claim.job_id
        self.worker_id = worker_id
        self.workdir = workdir
        self.store = store
        self.config = config
        self.worker_stopping = worker_stopping
        meta = workdir / ".worker"
        self.result_path = meta / f"result-{claim.attempt}.json"
        self.log_path = meta / f"child-{claim.attempt}.log"
        self.pid_path = meta / "child.pid"
        self.proc: subprocess.Popen | None = None
        self.stop_reason: str | None = None  # "cancel" | "pause" | "shutdown"

    # -- process -----------------------------------------------------------------------------
    def _argv(self) -> list[str]:
        c = self.config
        return [
            c.python, "-m", c.child_module, self.job_id,
            "--worker-id", self.worker_id,
            "--result", str(self.result_path),
            "--parent-pid", str(os.getpid()),
        ]  # fmt: skip

    def _start(self) -> subprocess.Popen:
        self.result_path.parent.mkdir(parents=True, exist_ok=True)
        self.result_path.unlink(missing_ok=True)
        env = {**os.environ, **self.config.extra_env, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                self._argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True, close_fds=True,
            )  # fmt: skip
        self.pid_path.write_text(f"{proc.pid}\n")
        logger.info("job %s attempt %d: training process pid %d", self.job_id, self.claim.attempt, proc.pid)
        try:
            self.store.event(
                self.job_id, "process",
                {"pid": proc.pid, "host": socket.gethostname(), "worker_id": self.worker_id,
                 "attempt": self.claim.attempt, "log": str(self.log_path)},
            )  # fmt: skip
        except Exception:
            logger.exception("job %s: could not record the process event", self.job_id)
        return proc

    # -- loop --------------------------------------------------------------------------------
    def run(self) -> str:
        """Run the child to its end; return the job's final status, ``RunOutcome.PAUSED``,
        ``RunOutcome.LOST`` or ``RunOutcome.RELEASED``."""
        self.proc = self._start()
        try:
            lost = self._watch(self.proc)
        finally:
            if self.proc.poll() is None:  # an exception in the loop: never leave a child behind
                stop_process_group(self.proc, grace=0, sig=signal.SIGKILL)
        returncode = stop_process_group(self.proc, grace=0, sig=signal.SIGKILL)  # reap stragglers
        self.pid_path.unlink(missing_ok=True)
        if lost:
            logger.warning("job %s: lease lost; child killed, the job is not ours any more", self.job_id)
            return RunOutcome.LOST
        return self._report(returncode)

    def _watch(self, proc: subprocess.Popen) -> bool:
        """Poll the child; True when the lease was lost (the child has been killed)."""
        c = self.config
        now = time.monotonic()
        next_beat, next_cancel_poll = now + c.heartbeat_seconds, now + c.cancel_poll_seconds
        kill_at: float | None = None
        while proc.poll() is None:
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + c.heartbeat_seconds
                if not self._heartbeat():
                    signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return True
            if self.stop_reason is None:
                if now >= next_cancel_poll:
                    next_cancel_poll = now + c.cancel_poll_seconds
                    self.stop_reason = self._stop_requested()
                if self.stop_reason is None and self.worker_stopping():
                    self.stop_reason = "shutdown"
                if self.stop_reason is not None:
                    logger.info("job %s: stopping the training process (%s)", self.job_id, self.stop_reason)
                    self._signal_leader(proc, signal.SIGTERM)
                    kill_at = now + c.grace_seconds
            elif kill_at is not None and now >= kill_at:
                logger.warning("job %s: no exit %.0f s after SIGTERM; SIGKILL", self.job_id, c.grace_seconds)
                signal_group(proc.pid, signal.SIGKILL)
                kill_at = None
            time.sleep(c.poll_seconds)
        return False

    @staticmethod
    def _signal_leader(proc: subprocess.Popen, sig: int) -> None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass

    def _heartbeat(self) -> bool:
        """Renew the lease. A database error is not a lost lease: training goes on, and the next
        beat that reaches the database tells whether the lease survived."""
        try:
            return self.store.heartbeat(self.job_id, self.worker_id, self.config.lease_seconds)
        except Exception:
            logger.exception("job %s: heartbeat failed (database unreachable?)", self.job_id)
            return True

    def _stop_requested(self) -> str | None:
        """``"cancel"``, ``"pause"`` or None; a database error reads as None (poll again)."""
        try:
            return self.store.stop_requested(self.job_id)
        except Exception:
            logger.exception("job %s: stop poll failed", self.job_id)
            return None

    def _cancel_requested(self) -> bool:
        try:
            return self.store.cancel_requested(self.job_id)
        except Exception:
            logger.exception("job %s: cancel poll failed", self.job_id)
            return False

    # -- outcome -----------------------------------------------------------------------------
    def _report(self, returncode: int | None) -> str:
        result = res.read_result(self.result_path)
        status = result["status"] if result else None
        logger.info("job %s: child exited with %s, result %s", self.job_id, returncode, status)
        final: JobState
        if status in (RunOutcome.CANCELLED, RunOutcome.SKIPPED):
            if self._park():
                return RunOutcome.PAUSED
            if self.stop_reason == "pause" and not self._cancel_requested():
                logger.warning(
                    "job %s: not parked; the reaper pauses it when the lease runs out", self.job_id
                )
                return RunOutcome.LOST
        if self.stop_reason == "shutdown" and status != RunOutcome.SUCCEEDED:
            return self._release()
        if status == RunOutcome.SUCCEEDED:
            final, error = JobState.SUCCEEDED, None
        elif self.stop_reason == "cancel" or status == RunOutcome.CANCELLED and self._cancel_requested():
            final, error = JobState.CANCELLED, None
        elif status == RunOutcome.CANCELLED:
            final = JobState.FAILED
            error = {"code": "interrupted", "message": "the training process was stopped by a signal "
                     "nobody in the service sent (no cancel was requested)", "param": None}  # fmt: skip
        elif status == RunOutcome.SKIPPED:
            # The child found the job no longer ours to run (cancelled while starting, ...).
            final = JobState.CANCELLED if self._cancel_requested() else JobState.FAILED
            error = None if final == JobState.CANCELLED else (result or {}).get("error")
        elif status == RunOutcome.FAILED:
            final, error = (
                JobState.FAILED,
                (result or {}).get("error")
                or {"code": "internal_error", "message": "the run failed without an error", "param": None},
            )
        else:
            final, error = JobState.FAILED, crash_error(returncode, self.log_path)
        return self._finish(final, error)

    def _park(self) -> bool:
        """pausing -> paused when a pause was requested (also during a shutdown, and for a job
        paused before its run started); False otherwise (a cancel, a lost lease, no database)."""
        if self.stop_reason == "cancel":
            return False
        try:
            parked = self.store.park(self.job_id, self.worker_id)
        except Exception:
            logger.exception(
                "job %s: could not park it; the reaper does when the lease runs out", self.job_id
            )
            return False
        if parked:
            logger.info("job %s: paused at its checkpoint; the worker is free", self.job_id)
        return parked

    def _release(self) -> str:
        """Hand the job back (running -> queued) on worker shutdown; if the database cannot be
        reached, the reaper re-queues it when the lease runs out."""
        try:
            if self.store.release(self.job_id, self.worker_id):
                logger.warning("job %s: released on worker shutdown; re-queued", self.job_id)
            else:
                logger.warning("job %s: release refused (lease lost or job changed)", self.job_id)
        except Exception:
            logger.exception(
                "job %s: could not release it; the reaper re-queues it after the lease", self.job_id
            )
        return RunOutcome.RELEASED

    def _finish(self, status: JobState, error: dict | None) -> str:
        try:
            if self.store.finish(self.job_id, self.worker_id, status, error):
                return RunOutcome(status)
            logger.warning("job %s: finish as %s refused (lease lost or job changed)", self.job_id, status)
        except Exception:
            logger.exception("job %s: could not record its end (%s)", self.job_id, status)
        return RunOutcome.LOST
