"""Act when this process's parent is gone (the process was re-parented)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable


def on_parent_gone(parent_pid: int, action: Callable[[], None], name: str, interval: float = 1.0) -> None:
    """Start a daemon thread that calls ``action`` (which should end the process) once
    ``os.getppid()`` is no longer ``parent_pid``, checking every ``interval`` seconds."""

    def loop() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        action()

    threading.Thread(target=loop, name=name, daemon=True).start()


STOP_WITH_PARENT_ENV = "MAR_STOP_WITH_PARENT"


def stop_with_parent_from_env(name: str) -> None:
    """When ``$MAR_STOP_WITH_PARENT`` names this process's parent (``mar up``, ``mar demo`` and
    the test stacks set it for their parts), SIGTERM this process once that parent is gone, so
    a killed ``mar up`` leaves no server behind; the SIGTERM is the part's normal stop (a worker
    warm-shuts down and releases its job). The variable is removed from the environment, so the
    part's own children do not inherit it."""
    value = os.environ.pop(STOP_WITH_PARENT_ENV, "")
    if value.isdigit() and int(value) == os.getppid():
        on_parent_gone(int(value), lambda: os.kill(os.getpid(), signal.SIGTERM), f"{name}-parent-watch")
