"""A teacher checkpoint whose unpickling would run code is refused at submit (422) and, when the
file is swapped after the submit, by the worker: never executed, and the worker goes on."""

from __future__ import annotations

import pytest
import torch

from api.sdk import ApiClientError

pytestmark = pytest.mark.integration


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: creates the marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil_spec(tiny_spec, ckpt, name):
    spec = tiny_spec(iterations=2, name=name)
    spec.update(
        kind="distill", teacher={"checkpoint": str(ckpt), "model": spec["model"]}, distill={"method": "mar"}
    )
    return spec


def test_code_running_teacher_checkpoint_is_refused_at_submit(stack, tiny_spec, checkpoint_root, tmp_path):
    marker = tmp_path / f"pwned-submit-{stack.name}"
    ckpt = checkpoint_root / f"evil-submit-{stack.name}.pt"
    torch.save({"model": _Payload(str(marker))}, ckpt)
    before = {j.id for j in stack.client.iter_jobs()}

    with pytest.raises(ApiClientError) as refused:
        stack.submit(_evil_spec(tiny_spec, ckpt, "evil-at-submit"))
    assert refused.value.status == 422 and refused.value.param == "teacher.checkpoint", refused.value
    assert "io.open" in str(refused.value) and "weights_only=True" in str(refused.value)
    assert {j.id for j in stack.client.iter_jobs()} == before  # nothing stored
    assert not marker.exists(), "the pickle's code ran"


def test_teacher_checkpoint_swapped_after_submit_fails_job_without_running_it(
    stack, tiny_spec, checkpoint_root, tmp_path
):
    """The submit check saw a safe file; the worker reads what is there when the job runs."""

    marker = tmp_path / f"pwned-{stack.name}"
    ckpt = checkpoint_root / f"evil-{stack.name}.pt"
    torch.save({"model": {"w": torch.zeros(1)}}, ckpt)
    bad = stack.submit(_evil_spec(tiny_spec, ckpt, "evil-teacher"))
    # the worker's training process imports torch before it reads the teacher: seconds, not ms
    torch.save({"model": _Payload(str(marker))}, ckpt)
    assert not marker.exists()
    good = stack.submit(tiny_spec(iterations=1, name="after-evil"))

    bad = stack.wait_terminal(bad["id"])
    assert bad["status"] == "failed", (bad, stack.log_tails())
    assert bad["error"]["code"] == "checkpoint_unsafe", bad["error"]
    assert bad["error"]["param"] == "teacher.checkpoint"
    assert not marker.exists(), "the pickle's code ran"

    good = stack.wait_terminal(good["id"])
    assert good["status"] == "succeeded", (good, stack.log_tails())
