"""``Tracking``: a run's trackers fed from its progress events (a progress callback wrapping the
caller's) and a trainer hook that ends them when training fails or is cancelled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mar_core.engine.trainer import HookBase, Trainer
from mar_core.errors import JobCancelled
from mar_core.progress import ProgressCallback, ProgressEvent
from mar_core.spec import JobSpec, MlflowSpec
from mar_core.tracking.mlflow_log import MlflowLog
from mar_core.tracking.tensorboard import TensorBoardLog


class Tracking(HookBase):
    """TensorBoard always; MLflow when the spec's ``tracking.mlflow`` or ``mlflow`` (the
    deployment's) is set, the spec's first. Pass it on as the run's progress callback."""

    def __init__(
        self,
        spec: JobSpec,
        workdir: Path,
        progress: ProgressCallback,
        *,
        start_step: int = 0,
        mlflow: MlflowSpec | None = None,
    ):
        self._progress = progress
        self.tensorboard = TensorBoardLog(workdir, start_step)
        cfg = (spec.tracking.mlflow if spec.tracking else None) or mlflow
        self.mlflow = MlflowLog(cfg, spec, workdir, self._warn) if cfg else None

    def __call__(self, event: ProgressEvent) -> None:
        self._progress(event)
        if event.get("type") == "metrics":
            step, values = int(event["step"]), event.get("values") or {}
            self.tensorboard.log_metrics(step, values)
            if self.mlflow:
                self.mlflow.log_metrics(step, values)

    def _warn(self, message: str) -> None:
        self._progress({"type": "log", "level": "warning", "message": message})

    def after_train(self, trainer: Trainer, error: BaseException | None) -> None:
        if error is not None:
            self.tensorboard.close()
            if self.mlflow:
                self.mlflow.abort(cancelled=isinstance(error, (JobCancelled, KeyboardInterrupt)))

    def finish(self, report: dict[str, Any], outputs: dict[str, Path]) -> dict[str, Path]:
        """End the trackers of a finished run; the TensorBoard event files, as outputs."""
        files = self.tensorboard.close()
        if self.mlflow:
            self.mlflow.finish(report, outputs)
        return files
