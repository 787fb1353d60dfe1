"""A job through the whole service: states, metrics, events, artifacts, and its weights."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime

import pytest

from worker.latency import submit_to_running

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)


def test_job_runs_to_success_and_serves_its_outputs(stack, tiny_spec, tmp_path):
    spec = tiny_spec(iterations=4, name="lifecycle", checkpoint_every=2)
    started, latency = submit_to_running(stack.client, spec, timeout=180)
    logger.warning("[%s] POST /jobs -> running: %.3f s", stack.name, latency)
    print(f"\n[{stack.name}] POST /jobs -> running latency: {latency:.3f} s")

    job = stack.wait_terminal(started.id)
    assert job["status"] == "succeeded", (job, stack.log_tails())
    assert job["attempt"] == 1 and job["error"] is None
    assert (job["progress_step"], job["progress_total"]) == (4, 4)

    status_events = stack.events(job["id"], "status")
    statuses = [e["data"]["status"] for e in status_events]
    assert statuses == ["queued", "starting", "running", "succeeded"]
    at = {e["data"]["status"]: datetime.fromisoformat(e["created_at"]) for e in status_events}
    print(
        f"[{stack.name}] queued -> starting (broker + claim) {(at['starting'] - at['queued']).total_seconds():.3f} s, "
        f"starting -> running (child start) {(at['running'] - at['starting']).total_seconds():.3f} s"
    )
    types = {e["type"] for e in stack.events(job["id"])}
    assert {"process", "phase", "progress", "checkpoint", "artifact"} <= types

    series = stack.client.metrics(job["id"]).series
    assert [p.step for p in series["loss/total"]] == [1, 2, 3, 4]
    assert "eval/AP" in series and "lr" in series

    arts = {a.name: a for a in stack.client.artifacts(job["id"])}
    assert {"model.pt", "model.json", "report.json", "last.pt"} <= set(arts)
    weights = stack.client.download(job["id"], "model.pt", tmp_path)  # verifies X-Checksum-Sha256
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == arts["model.pt"].sha256
    assert weights.stat().st_size == arts["model.pt"].size
    card = json.loads(stack.client.download(job["id"], "model.json", tmp_path).read_text())

    import torch
    import torchvision

    from mar_core.models.registry import build_detector
    from mar_core.spec import ModelSpec

    model = build_detector(ModelSpec.model_validate(card["model"]), card["num_classes"])
    assert isinstance(model, torchvision.models.detection.RetinaNet)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, 64, 64)])
    assert set(out[0]) == {"boxes", "scores", "labels"}
