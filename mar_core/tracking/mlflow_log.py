"""MLflow logging of one job (the ``tracking`` extra): the spec's fields as params, every metric by
step, the final evaluation as ``final/<name>``, the model (``model.pt``, ``model.json``) as
artifacts. A retry of the job continues the same MLflow run (its id is kept in the work folder).

Tracking never fails a job: the first error (no ``mlflow`` package, a server that does not
answer, a refused write) is reported through ``warn`` and MLflow logging stops for the run.
HTTP retries are bounded (``MLFLOW_HTTP_REQUEST_*`` defaults below, an environment value wins)
so that an unreachable server does not hold a GPU for minutes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mar_core.spec import JobSpec, MlflowSpec

try:  # the `tracking` extra: pip install 'mar-distill[tracking]'
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient
except ImportError:
    MlflowClient = None

log = logging.getLogger(__name__)

RUN_FILE = "mlflow_run.json"  # the MLflow run of this work folder, for a retry
ARTIFACTS = ("model.pt", "model.json", "report.json")
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
_BATCH = 100  # params per log_batch call (MLflow's limit)
_PARAM_CHARS = 6000  # the longest param value MLflow stores
_BAD_KEY_CHARS = re.compile(r"[^\w\-. :/]")


def flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``("train.lr", "0.001")`` pairs of a JSON dict; lists as JSON text."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from flatten(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), data if isinstance(data, str) else json.dumps(data)


def metric_key(name: str) -> str:
    """An MLflow-valid key: characters MLflow refuses (in class names) become ``_``."""
    return _BAD_KEY_CHARS.sub("_", name)


def redact(text: str, uri: str) -> str:
    """``text`` without the user and password of ``uri`` (MLflow's errors quote the URL)."""
    user_info = urlsplit(uri).netloc.rpartition("@")[0]
    return text.replace(user_info + "@", "") if user_info else text


class MlflowLog:
    """One job's MLflow run; every method is a no-op once logging has failed."""

    def __init__(self, cfg: MlflowSpec, spec: JobSpec, workdir: Path, warn: Callable[[str], None]):
        self.cfg, self._warn, self._run_file = cfg, warn, Path(workdir) / RUN_FILE
        self.run_id: str | None = None
        self._client = None
        self._call(self._start, spec, starting=True)

    def _call(self, fn: Callable[..., None], *args: Any, starting: bool = False) -> None:
        """``fn(*args)`` while logging works; its error stops logging with one warning."""
        if self._client is None and not starting:
            return
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - tracking must never fail the job
            self._client = None
            message = redact(
                f"MLflow logging to {self.cfg.uri} stopped: {type(e).__name__}: {e}", self.cfg.uri
            )
            log.warning("%s", message)
            self._warn(message)

    def _start(self, spec: JobSpec) -> None:
        if MlflowClient is None:
            raise RuntimeError("the mlflow package is not installed (pip install 'mar-distill[tracking]')")
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        client = MlflowClient(tracking_uri=self.cfg.uri)
        self.run_id = self._previous_run()
        if self.run_id is None:
            found = client.get_experiment_by_name(self.cfg.experiment)
            experiment_id = found.experiment_id if found else client.create_experiment(self.cfg.experiment)
            self.run_id = client.create_run(experiment_id, run_name=spec.name).info.run_id
            self._run_file.write_text(json.dumps({"uri": self.cfg.uri, "run_id": self.run_id}))
            params = [
                Param(k, v[:_PARAM_CHARS])
                for k, v in flatten(spec.to_json_dict())
                if k != "tracking.mlflow.uri"
            ]
            for i in range(0, len(params), _BATCH):
                client.log_batch(self.run_id, params=params[i : i + _BATCH])
        else:
            client.update_run(self.run_id, status="RUNNING")
        self._client = client

    def _previous_run(self) -> str | None:
        """The run a previous attempt in this work folder started on the same server."""
        if not self._run_file.exists():
            return None
        saved = json.loads(self._run_file.read_text())
        return saved["run_id"] if saved.get("uri") == self.cfg.uri else None

    def _log_metrics(self, step: int, values: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        metrics = [Metric(metric_key(k), float(v), now, step) for k, v in values.items()]
        self._client.log_batch(self.run_id, metrics=metrics)

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        self._call(self._log_metrics, step, values)

    def finish(self, report: dict[str, Any], outputs: dict[str, Path]) -> None:
        """The final evaluation, the model files; the run ends FINISHED."""

        def finish() -> None:
            final = {f"final/{k}": v for k, v in (report.get("eval") or {}).items()}
            self._log_metrics(int(report.get("iterations", 0)), final)
            for name in ARTIFACTS:
                if name in outputs:
                    self._client.log_artifact(self.run_id, str(outputs[name]))
            self._client.set_terminated(self.run_id, "FINISHED")

        self._call(finish)

    def abort(self, cancelled: bool) -> None:
        """The run ends KILLED (the job was cancelled) or FAILED."""
        self._call(lambda: self._client.set_terminated(self.run_id, "KILLED" if cancelled else "FAILED"))
