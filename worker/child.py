"""The training process of one job attempt: ``python -m worker.child JOB_ID --worker-id W --result F``.

Started by ``worker.supervisor`` in a fresh process (own process group). It loads the stored spec
from the database and re-validates it with ``JobSpec``, marks the job running, and calls
``mar_core.run.run_job`` with ``workdir = {artifact_root}/{job_id}`` (a retry resumes from
``workdir/checkpoints/last.pt``), the configured data roots and checkpoint roots (the checkpoint
root and the artifact root, where previous jobs' outputs live), the deployment's MLflow server
(``MAR_MLFLOW_URI``), and a progress sink that writes metrics, events and artifacts to the database.

SIGTERM/SIGINT set the stop flag polled by ``run_job`` (it checkpoints and raises
``JobCancelled``). If the supervisor dies (``kill -9`` of the worker), the child kills its own
process group: the lease then runs out and the reaper re-queues the job for a worker that
resumes from the last checkpoint; an orphan must not race that retry on the same workdir.

The watch starts before the training code is imported (``worker.child_run``: torch takes
seconds, over ten on a loaded machine), so an orphan dies within a second, not after its imports
and beyond the lease, when the retry's process may already run.

The end is reported in the result file (``worker.result``); exit code 0 succeeded, 1 failed,
3 cancelled, 4 skipped (the job was not ours to start any more).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from mar_core.parent_watch import on_parent_gone
from worker import result as res

logger = logging.getLogger("worker.child")


def _install_stop_handlers(stop: threading.Event) -> None:
    def handler(signum, _frame):
        if stop.is_set():
            return
        logger.info(
            "received %s: stopping at the next step (a checkpoint is written)", signal.Signals(signum).name
        )
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _watch_parent(parent_pid: int) -> None:
    """Kill this process group when the supervisor is gone (re-parented)."""

    def gone() -> None:
        logger.error("supervisor %d is gone; killing the training process group", parent_pid)
        logging.shutdown()
        os.killpg(os.getpgid(0), signal.SIGKILL)

    on_parent_gone(parent_pid, gone, "parent-watch")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.child", description=__doc__.splitlines()[0])
    parser.add_argument("job_id")
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--result", required=True, type=Path, help="where to write the result JSON")
    parser.add_argument("--parent-pid", type=int, default=None, help="die with this supervisor")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    _install_stop_handlers(stop)
    if args.parent_pid:
        _watch_parent(args.parent_pid)
    # only now the slow imports (torch): an orphan must not outlive its supervisor by their length
    from worker.child_run import run

    status = run(args.job_id, args.worker_id, args.result, stop)
    return res.EXIT_CODES[status]


if __name__ == "__main__":
    sys.exit(main())
