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
import traceback
from pathlib import Path

from api.db import jobs_repo
from api.db.session import make_engine, make_session_factory, session_scope
from api.settings import Settings, get_settings
from mar_core.errors import JobCancelled, MarError
from mar_core.parent_watch import on_parent_gone
from mar_core.paths import redact_paths
from mar_core.run import run_job
from mar_core.spec import MlflowSpec, parse_spec
from worker import result as res
from worker.progress_sink import DbProgressSink

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


def run(job_id: str, worker_id: str, result_path: Path, stop: threading.Event) -> str:
    """Run the job; write the result file; return its status."""
    settings = get_settings()
    names = settings.path_names()  # failure messages are shown to API clients
    engine = make_engine(settings.database_url)
    sf = make_session_factory(engine)
    sink: DbProgressSink | None = None
    try:
        with session_scope(sf) as s:
            job = jobs_repo.get_job(s, job_id)
            if job is None:
                res.write_result(
                    result_path,
                    res.SKIPPED,
                    {"code": "not_found", "message": f"job {job_id} not found", "param": None},
                )
                return res.SKIPPED
            raw_spec = dict(job.spec)
        spec = parse_spec(raw_spec)  # re-validate: SpecError (invalid_spec) names the field
        with session_scope(sf) as s:
            if not jobs_repo.mark_running(s, job_id, worker_id):
                logger.warning("job %s is no longer starting for %s; not running it", job_id, worker_id)
                res.write_result(result_path, res.SKIPPED)
                return res.SKIPPED
        logger.info("job %s: running (pid %d)", job_id, os.getpid())
        workdir = settings.job_dir(job_id)
        sink = DbProgressSink(sf, job_id, progress_webhook_seconds=settings.webhook_progress_seconds)
        report = run_job(
            spec,
            workdir,
            data_roots=settings.dataset_read_roots,
            checkpoint_roots=settings.checkpoint_read_roots,
            progress=sink,
            should_stop=stop.is_set,
            mlflow=_deployment_mlflow(settings),
        )
        sink.close()
        res.write_result(result_path, res.SUCCEEDED, AP=(report.get("eval") or {}).get("AP"))
        return res.SUCCEEDED
    except JobCancelled:
        _final_flush(sink)
        res.write_result(result_path, res.CANCELLED)
        return res.CANCELLED
    except MarError as e:
        logger.error("job %s failed: %s: %s", job_id, e.code, e.message)
        _final_flush(sink)
        res.write_result(result_path, res.FAILED, {**e.to_dict(), "message": redact_paths(e.message, names)})
        return res.FAILED
    except Exception as e:  # noqa: BLE001 - anything else is reported, never swallowed silently
        logger.error("job %s crashed:\n%s", job_id, traceback.format_exc())
        _final_flush(sink)
        res.write_result(
            result_path,
            res.FAILED,
            {
                "code": "internal_error",
                "message": redact_paths(f"{type(e).__name__}: {e}", names),
                "param": None,
            },
        )
        return res.FAILED
    finally:
        engine.dispose()


def _deployment_mlflow(settings: Settings) -> MlflowSpec | None:
    """MAR_MLFLOW_URI / MAR_MLFLOW_EXPERIMENT: MLflow for the jobs whose spec names none."""
    if not settings.mlflow_uri:
        return None
    return MlflowSpec(uri=settings.mlflow_uri, experiment=settings.mlflow_experiment)


def _final_flush(sink) -> None:
    if sink is None:
        return
    try:
        sink.close(retries=2)
    except Exception:
        logger.exception("could not write the last progress of the run")


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
    status = run(args.job_id, args.worker_id, args.result, stop)
    return res.EXIT_CODES[status]


if __name__ == "__main__":
    sys.exit(main())
