"""Process-group helpers shared by the supervisor, the stack commands and the tests.

Every process the service starts for a job or a stack part is started with
``start_new_session=True``: it leads its own process group, so one ``killpg`` reaches it and
everything it started (DataLoader workers, torch.distributed ranks), and a Ctrl-C in the
terminal of ``mar up`` is not delivered to the training process behind the supervisor's back.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time

logger = logging.getLogger(__name__)


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the process group ``pgid``; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # a recycled id owned by someone else: not ours to signal
        logger.warning("not allowed to signal process group %s", pgid)
        return False


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return True  # no /proc (macOS): os.kill said it exists


def stop_process_group(proc: subprocess.Popen, *, grace: float, sig: int = signal.SIGTERM) -> int | None:
    """Ask a group leader to stop (``sig`` to the whole group), SIGKILL the group after ``grace``
    seconds, reap the leader and return its exit code (None if it could not be reaped)."""
    pgid = proc.pid  # start_new_session=True: the leader's pid is the group id
    if proc.poll() is None:
        signal_group(pgid, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            logger.warning("pid %s ignored signal %s for %.0f s; killing its group", proc.pid, sig, grace)
    signal_group(pgid, signal.SIGKILL)  # stragglers of the group, even when the leader exited
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        return None


def wait_gone(pid: int, timeout: float) -> bool:
    """Poll until ``pid`` is gone (or a zombie); True when it is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def stop_event_on_signals() -> threading.Event:
    """An event set by the first SIGTERM or SIGINT (a graceful stop of a long-running command)."""
    stop = threading.Event()

    def handler(signum, _frame):
        logger.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop
