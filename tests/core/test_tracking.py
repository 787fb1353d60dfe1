"""Tracking of a run: TensorBoard event files with every metric by step (one value per step
after a resume), MLflow logging to a local store, and an MLflow that does not answer."""

from __future__ import annotations

import json
import time

import pytest
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mar_core.run import run_job
from mar_core.spec import MlflowSpec
from mar_core.tracking.mlflow_log import RUN_FILE
from tests.conftest import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")


def _scalars(logdir) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_files_hold_every_metric_by_step_once_after_a_resume(tiny_synth, tmp_path):
    spec = tiny_spec(tiny_synth, train={"iterations": 4, "checkpoint_every": 2})
    events: list[dict] = []

    def crash_at_step_4(event: dict) -> None:  # after step 3's metrics, before a checkpoint at 4
        events.append(event)
        if event["type"] == "progress" and event["step"] == 4:
            raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError, match="worker lost"):
        run_job(spec, tmp_path, progress=crash_at_step_4)
    assert [s for s, _ in _scalars(tmp_path / "tensorboard")["loss/total"]] == [1, 2, 3]
    report = run_job(spec, tmp_path, progress=events.append)
    assert report["resumed_from_step"] == 2  # step 3 runs again: its first value is purged

    scalars = _scalars(tmp_path / "tensorboard")
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    for name in ("loss/total", "loss/det/classification", "lr", "time/step_s"):
        assert [step for step, _ in scalars[name]] == [1, 2, 3, 4], name
        assert [v for _, v in scalars[name]] == pytest.approx([r[name] for r in rows if name in r], rel=1e-6)
    assert [step for step, _ in scalars["eval/AP"]] == [4]
    assert scalars["eval/AP"][0][1] == pytest.approx(report["eval"]["AP"], abs=1e-6)

    artifacts = {e["name"]: e["path"] for e in events if e["type"] == "artifact"}
    files = sorted(p.name for p in (tmp_path / "tensorboard").iterdir())
    assert len(files) == 2 and {f"tensorboard/{f}" for f in files} <= set(artifacts)


def test_mlflow_run_holds_params_metrics_final_ap_and_the_model(tiny_synth, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a sqlite store keeps artifacts under ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = tiny_spec(
        tiny_synth,
        name="tracked",
        train={"iterations": 3},
        tracking={"mlflow": {"uri": uri, "experiment": "kd"}},
    )
    events: list[dict] = []
    report = run_job(spec, tmp_path / "job", progress=events.append)

    assert not [e for e in events if e.get("level") == "warning"], events
    client = MlflowClient(tracking_uri=uri)
    run_id = json.loads((tmp_path / "job" / RUN_FILE).read_text())["run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "tracked"
    assert client.get_experiment(run.info.experiment_id).name == "kd"
    params = run.data.params
    assert params["train.lr"] == "0.01" and params["model.backbone"] == "resnet18"
    assert params["dataset.path"] == str(tiny_synth) and "tracking.mlflow.uri" not in params
    assert [m.step for m in client.get_metric_history(run_id, "loss/total")] == [1, 2, 3]
    assert run.data.metrics["final/AP"] == pytest.approx(report["eval"]["AP"])
    assert {a.path for a in client.list_artifacts(run_id)} >= {"model.pt", "model.json", "report.json"}


def test_a_deployment_mlflow_that_does_not_answer_never_fails_the_job(tiny_synth, tmp_path):
    spec = tiny_spec(tiny_synth, train={"iterations": 2})
    events: list[dict] = []
    started = time.monotonic()
    mlflow = MlflowSpec(uri="http://ops:s3cret@127.0.0.1:1")  # the deployment's, with credentials
    report = run_job(spec, tmp_path, progress=events.append, mlflow=mlflow)

    assert report["iterations"] == 2 and (tmp_path / "model.pt").exists()
    warnings = [e["message"] for e in events if e["type"] == "log" and e["level"] == "warning"]
    assert len(warnings) == 1 and "MLflow logging to http://127.0.0.1:1 stopped" in warnings[0]
    assert "s3cret" not in warnings[0]
    assert time.monotonic() - started < 60  # bounded HTTP retries
    assert any(e["name"].startswith("tensorboard/") for e in events if e["type"] == "artifact")
