"""Webhooks through the whole service: a job's events reach a local receiver, signed, from the
reaper's delivery loop, on both stacks."""

from __future__ import annotations

import json
import time

import pytest

from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.integration


def test_job_webhooks_delivered_signed_with_retries(stack, tiny_spec):
    receiver = Receiver(fail_first=1)  # the first delivery is retried
    try:
        spec = tiny_spec(iterations=2, name="hooked", eval_max_images=2)
        spec["webhooks"] = [{"url": receiver.url}]
        job = stack.submit(spec)
        secret = job["webhook_secret"]
        job = stack.wait_terminal(job["id"])
        assert job["status"] == "succeeded", (job, stack.log_tails())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            deliveries = stack.client._request("GET", f"/jobs/{job['id']}/webhook-deliveries").json()
            if deliveries and all(d["status"] == "delivered" for d in deliveries):
                break
            time.sleep(0.5)
        assert deliveries and all(d["status"] == "delivered" for d in deliveries), deliveries
        payloads = receiver.verified(secret)
        types = [p["type"] for p in payloads]
        assert types.count("job.succeeded") == 1 and "job.progress" in types
        assert any(len(d["attempts"]) == 2 for d in deliveries)  # the retried one
        final = next(p for p in payloads if p["type"] == "job.succeeded")
        assert final["data"]["job_id"] == job["id"] and final["data"]["status"] == "succeeded"
        assert json.loads(receiver.requests[-1]["body"])["type"] in types
    finally:
        receiver.close()
