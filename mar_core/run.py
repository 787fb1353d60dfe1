"""Run one job (train or distill) in a work folder: the entry point shared by ``mar run`` and
the service's worker.

A job whose ``distill.method`` is ``"auto"`` searches for its distiller (``mar_core.search``);
any other runs as its spec says (``mar_core.single_run``). Outputs in ``workdir`` either way:
``metrics.jsonl``, ``pr_curves.json`` and ``samples/*.png``, ``tensorboard/``,
``checkpoints/last.pt`` (exact resume) and ``checkpoints/best.pt``, ``model.pt`` (plain
torchvision state_dict), ``model.json`` and ``report.json``; a search adds ``search/`` (its
state and one folder per trial). A workdir that holds a checkpoint of the same spec resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mar_core.progress import ProgressCallback, ignore_progress
from mar_core.search import JobContext, is_search, run_search
from mar_core.single_run import run_single_job
from mar_core.spec import JobSpec, MlflowSpec

__all__ = ["run_job"]


def run_job(
    spec: JobSpec,
    workdir: Path,
    *,
    data_roots: list[Path] | None = None,
    checkpoint_roots: list[Path] | None = None,
    progress: ProgressCallback = ignore_progress,
    should_stop: Callable[[], bool] = lambda: False,
    device: str | None = None,
    mlflow: MlflowSpec | None = None,
) -> dict:
    """Train or distil as ``spec`` says; return the report (also written to ``report.json``).
    ``mlflow``: the deployment's MLflow server, used when the spec names none.

    With ``resources.gpus > 1`` this process becomes rank 0 of that many torch.distributed
    processes (``mar_core.engine.distributed``); it alone calls ``progress`` and ``should_stop``.
    """
    context = JobContext(data_roots, checkpoint_roots, progress, should_stop, device, mlflow)
    if is_search(spec):
        return run_search(spec, Path(workdir), context)
    return run_single_job(spec, workdir, **context.kwargs())
