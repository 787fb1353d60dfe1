"""A job through the whole service leaves its TensorBoard event file as an artifact, and the
Prometheus endpoint reports it: running on a heartbeating worker, then succeeded with a duration."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from worker.latency import submit_to_running

pytestmark = pytest.mark.integration


def _scrape(stack) -> tuple[str, dict[tuple[str, tuple], float]]:
    r = httpx.get(f"{stack.url}/metrics/prometheus", timeout=30)  # no API key: a scraper has none
    assert r.status_code == 200, r.text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }
    return r.text, samples


def test_tensorboard_artifact_and_prometheus_report_the_job(stack, tiny_spec, tmp_path):
    started, _ = submit_to_running(stack.client, tiny_spec(iterations=6, name="tracked-it"), timeout=180)
    _, running = _scrape(stack)
    assert running[("mar_jobs", (("state", "running"),))] >= 1
    ages = [v for (name, _), v in running.items() if name == "mar_worker_heartbeat_age_seconds"]
    assert ages and min(ages) < stack.settings.lease_seconds, running

    job = stack.wait_terminal(started.id)
    assert job["status"] == "succeeded", (job, stack.log_tails())
    events = [a.name for a in stack.client.artifacts(job["id"]) if a.name.startswith("tensorboard/")]
    assert len(events) == 1 and events[0].startswith("tensorboard/events.out.tfevents."), events
    path = stack.client.download(job["id"], events[0], tmp_path / "tb")  # checks its sha256
    acc = EventAccumulator(str(path.parent))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss/total")] == [1, 2, 3, 4, 5, 6]
    assert [e.step for e in acc.Scalars("eval/AP")] == [6]

    text, done = _scrape(stack)
    assert done[("mar_jobs", (("state", "succeeded"),))] >= 1
    assert done[("mar_job_duration_seconds_count", (("state", "succeeded"),))] >= 1
    count = "mar_http_request_duration_seconds_count"
    assert done[(count, (("method", "GET"), ("route", "/jobs/{job_id}"), ("status", "2xx")))] >= 1
    assert job["id"] not in text and "tracked-it" not in text
