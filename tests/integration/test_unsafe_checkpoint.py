"""A teacher checkpoint whose unpickling would run code is refused, never executed, and the
worker goes on with the next job."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: creates the marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_code_running_teacher_checkpoint_fails_job_without_running_it(
    stack, tiny_spec, checkpoint_root, tmp_path
):
    import torch

    marker = tmp_path / f"pwned-{stack.name}"
    ckpt = checkpoint_root / f"evil-{stack.name}.pt"
    torch.save({"model": _Payload(str(marker))}, ckpt)
    assert not marker.exists()

    spec = tiny_spec(iterations=2, name="evil-teacher")
    spec.update(
        kind="distill", teacher={"checkpoint": str(ckpt), "model": spec["model"]}, distill={"method": "mar"}
    )
    bad = stack.submit(spec)
    good = stack.submit(tiny_spec(iterations=1, name="after-evil"))

    bad = stack.wait_terminal(bad["id"])
    assert bad["status"] == "failed", (bad, stack.log_tails())
    assert bad["error"]["code"] == "checkpoint_unsafe", bad["error"]
    assert bad["error"]["param"] == "teacher.checkpoint"
    assert not marker.exists(), "the pickle's code ran"

    good = stack.wait_terminal(good["id"])
    assert good["status"] == "succeeded", (good, stack.log_tails())
