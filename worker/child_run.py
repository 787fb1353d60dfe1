"""The body of the training process (``worker.child``): load the job, mark it running, train,
write the result file. Imported by ``worker.child.main`` only once the supervisor watch runs, so
an orphan dies within a second even while these imports (torch: seconds, over ten on a loaded
machine) are still going on."""

from __future__ import annotations

import logging
import os
import threading
import traceback
from pathlib import Path

import torch

from api.db import claims_repo, jobs_repo
from api.db.session import make_engine, make_session_factory, session_scope
from api.services.datasets import with_resolved_dataset
from api.services.mlflow_urls import check_mlflow_uri
from api.services.teacher_source import with_resolved_teacher
from api.settings import Settings, get_settings
from mar_core.errors import JobCancelled, MarError, SpecError
from mar_core.paths import redact_paths
from mar_core.run import run_job
from mar_core.spec import JobSpec, MlflowSpec, parse_spec
from worker import result as res
from worker.progress_sink import DbProgressSink

logger = logging.getLogger("worker.child")


def run(job_id: str, worker_id: str, result_path: Path, stop: threading.Event) -> str:
    """Run the job; write the result file; return its status."""
    settings = get_settings()
    names = settings.path_names()  # failure messages are shown to API clients
    if settings.training_threads:
        torch.set_num_threads(settings.training_threads)
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
        with session_scope(sf) as s:  # dataset.id, teacher.job / teacher.upload: where they are now
            spec = with_resolved_teacher(with_resolved_dataset(spec, s), settings, s)
        spec = spec.reported_as(raw_spec)  # report.json names them as the client did
        with session_scope(sf) as s:
            if not claims_repo.mark_running(s, job_id, worker_id):
                logger.warning("job %s is no longer starting for %s; not running it", job_id, worker_id)
                res.write_result(result_path, res.SKIPPED)
                return res.SKIPPED
        logger.info("job %s: running (pid %d)", job_id, os.getpid())
        workdir = settings.job_dir(job_id)
        sink = DbProgressSink(sf, job_id, progress_webhook_seconds=settings.webhook_progress_seconds)
        spec, deployment_mlflow = checked_tracking(spec, settings, sink)
        report = run_job(
            spec,
            workdir,
            data_roots=settings.dataset_read_roots,
            checkpoint_roots=settings.checkpoint_read_roots,
            progress=sink,
            should_stop=stop.is_set,
            mlflow=deployment_mlflow,
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


def checked_tracking(spec: JobSpec, settings: Settings, progress) -> tuple[JobSpec, MlflowSpec | None]:
    """The spec's own MLflow server checked again by the URL guard, as at submission (its name
    may resolve elsewhere by now); refused, the run goes on without MLflow (tracking never fails
    a job) and a warning event says why. Returns the spec to run and the deployment's MLflow."""
    mlflow = spec.tracking.mlflow if spec.tracking else None
    if mlflow is None:
        return spec, _deployment_mlflow(settings)
    try:
        check_mlflow_uri(mlflow.uri, settings)
    except SpecError as e:
        logger.warning("MLflow logging off: %s", e.message)
        progress({"type": "log", "level": "warning", "message": f"MLflow logging off: {e.message}"})
        return spec.model_copy(update={"tracking": None}), None
    return spec, _deployment_mlflow(settings)


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
