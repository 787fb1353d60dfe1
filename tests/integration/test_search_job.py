"""A distiller search (``distill.method: "auto"``) through the real service: kill -9 of the
worker mid-search, the job is re-queued and resumes its search where it was (ranked trials are
not run again), and every trial's metrics and the leaderboard reach the API."""

from __future__ import annotations

import json
import signal

import pytest

from tests.integration.teachers import write_teacher
from worker.procs import signal_group, wait_gone

pytestmark = pytest.mark.integration


def test_search_job_survives_a_killed_worker_and_reports_its_trials(
    stack, tiny_spec, checkpoint_root, tmp_path
):
    spec = tiny_spec(iterations=8, name="search", checkpoint_every=1)
    teacher = write_teacher(checkpoint_root, spec["model"], f"search-{stack.name}")
    spec.update(
        kind="distill",
        teacher={"checkpoint": str(teacher), "model": spec["model"]},
        distill={"method": "auto"},
    )
    job_id = stack.submit(spec)["id"]

    def first_trial_ranked(job) -> bool:
        return any(
            e["data"].get("message", "").startswith("search trial") for e in stack.events(job_id, "log")
        )

    stack.wait(job_id, first_trial_ranked, what="the first search trial ranked")
    child = stack.events(job_id, "process")[-1]["data"]["pid"]
    stack.kill_worker(stack.worker)
    signal_group(child, signal.SIGKILL)
    assert wait_gone(child, 10)
    stack.start_worker()

    job = stack.wait_terminal(job_id, timeout=300)
    assert job["status"] == "succeeded", (job, stack.log_tails())
    assert job["attempt"] == 2

    messages = [e["data"].get("message", "") for e in stack.events(job_id, "log")]
    ranked = [m.split(":")[0] for m in messages if m.startswith("search trial")]
    assert len(ranked) == len(set(ranked)), ranked  # no trial ranked twice across the two attempts
    assert any(m.startswith("search chose") for m in messages)

    report = json.loads(stack.client.download(job_id, "report.json", tmp_path).read_text())
    labels = {row["label"] for row in report["search"]["leaderboard"]}
    assert labels == {"mar", "cwd_head_x9", "mar_cross", "none"}
    series = stack.client.metrics(job_id).series
    for label in labels:
        assert f"search/{label}/select/AP" in series
    for name, points in series.items():
        steps = [p.step for p in points]
        assert len(steps) == len(set(steps)), f"{name}: duplicate steps {steps}"
    assert [p.step for p in series["loss/total"]][-1] == 8
