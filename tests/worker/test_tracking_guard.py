"""The training process checks a spec's MLflow server again with the URL guard before it logs
there (issue 33): a name that resolved to an internal server at submission and to the worker
itself now turns MLflow off for the run, with a warning event, and the run goes on."""

from __future__ import annotations

import ipaddress

import pytest

from api.settings import Settings
from mar_core import url_guard
from mar_core.spec import parse_spec
from worker.child_run import checked_tracking


def _spec(uri: str):
    return parse_spec(
        {
            "kind": "train",
            "dataset": {"format": "coco", "path": "coco"},
            "train": {"iterations": 1},
            "tracking": {"mlflow": {"uri": uri}},
        }
    )


@pytest.mark.parametrize(
    ("address", "kept"), [("10.1.2.3", True), ("127.0.0.1", False), ("::ffff:169.254.169.254", False)]
)
def test_the_spec_mlflow_server_is_checked_where_it_is_called(tmp_path, monkeypatch, address, kept):
    monkeypatch.setattr(url_guard, "resolve_addresses", lambda host, port: [ipaddress.ip_address(address)])
    settings = Settings(state_dir=tmp_path, mlflow_uri="http://deployment-mlflow.test:5000")
    events: list[dict] = []
    spec, deployment = checked_tracking(_spec("http://mlflow.test:5000"), settings, events.append)
    if kept:
        assert spec.tracking.mlflow.uri == "http://mlflow.test:5000" and events == []
        assert deployment is not None  # used only when a spec names none
    else:
        assert spec.tracking is None and deployment is None  # not the deployment's server either
        [event] = events
        assert event["level"] == "warning" and "tracking.mlflow.uri" in event["message"]
