"""A stand-in for ``worker.child`` in the supervisor's unit tests (no torch, no database).

Behaviour from ``FAKE_CHILD_MODE``: ``succeed``, ``fail``, ``crash`` (exit 7, no result),
``run`` (loop until SIGTERM, then report cancelled), ``stubborn`` (ignore SIGTERM), ``orphan``
(loop forever; the parent-pid watchdog of the real child is what the test checks elsewhere).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from worker import result as res


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("job_id")
    p.add_argument("--worker-id")
    p.add_argument("--result", type=Path)
    p.add_argument("--parent-pid", type=int)
    args = p.parse_args()
    mode = os.environ.get("FAKE_CHILD_MODE", "succeed")
    print(f"fake child {os.getpid()} mode {mode}", flush=True)
    if mode == "succeed":
        res.write_result(args.result, res.SUCCEEDED)
        return 0
    if mode == "fail":
        res.write_result(
            args.result, res.FAILED, {"code": "dataset_invalid", "message": "bad", "param": "dataset"}
        )
        return 1
    if mode == "crash":
        print("about to crash: boom", flush=True)
        return 7
    stop = []
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.05)
    res.write_result(args.result, res.CANCELLED)
    return 3


if __name__ == "__main__":
    sys.exit(main())
