"""Act when this process's parent is gone (the process was re-parented)."""

from __future__ import annotations

import os
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
