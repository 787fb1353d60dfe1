"""Teachers named by id through the real service: a train job's output as ``{"job": id}`` and a
checkpoint upload as ``{"upload": id}`` teach distill jobs run by a real worker; the jobs' specs
keep the ids."""

from __future__ import annotations

import pytest

from tests.integration.teachers import write_teacher

pytestmark = pytest.mark.integration


def test_a_finished_job_and_an_upload_teach_by_id(stack, tiny_spec, tmp_path):
    teacher_job = stack.submit(tiny_spec(iterations=1, name="teacher-by-id"))["id"]
    assert stack.wait_terminal(teacher_job, timeout=300)["status"] == "succeeded", stack.log_tails()
    spec = tiny_spec(iterations=1, name="student-by-id")
    upload = stack.client.upload_checkpoint(write_teacher(tmp_path, spec["model"], f"up-{stack.name}"))
    for teacher in ({"job": teacher_job}, {"upload": upload.id, "model": spec["model"]}):
        job_id = stack.submit({**spec, "kind": "distill", "teacher": teacher, "distill": {"method": "mar"}})[
            "id"
        ]
        job = stack.wait_terminal(job_id, timeout=300)
        assert job["status"] == "succeeded", (teacher, job, stack.log_tails())
        stored = job["spec"]["teacher"]
        assert (stored.get("job"), stored.get("upload")) == (teacher.get("job"), teacher.get("upload"))
        assert "checkpoint" not in stored  # no server path in the job's spec
