"""A job's teacher named by id: ``{"job": id}`` (a job of the project that succeeded) and
``{"upload": id}`` (``POST /checkpoints``' id). The stored spec keeps the id (no server path in
responses); another project's resources, a job that did not succeed, a missing id are 422s naming
the field; the worker's resolver finds the files; ``mar run`` refuses ids naming the field."""

from __future__ import annotations

import pytest

from api.db import claims_repo
from api.db.session import session_scope
from api.services.teacher_source import with_resolved_teacher
from mar_core.errors import SpecError
from mar_core.spec import JobSpec
from mar_core.teacher import load_teacher
from tests.api.checkpoint_writers import tiny_checkpoint
from tests.api.conftest import error_params, train_spec
from tests.api.test_projects import _key


def _finished_job(client, auth, db, settings, status: str = "succeeded") -> str:
    job_id = client.post("/jobs", json=train_spec(), headers=auth).json()["id"]
    with session_scope(db) as s:
        claims_repo.claim_job(s, job_id, "w1", 60)
        claims_repo.mark_running(s, job_id, "w1")
        error = None if status == "succeeded" else {"code": "x", "message": "x", "param": None}
        claims_repo.finish_job(s, job_id, "w1", status, error)
    folder = settings.job_dir(job_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text("{}")
    return job_id


def _distill(teacher: dict) -> dict:
    return train_spec(kind="distill", teacher=teacher)


def _no_server_path(body: dict, settings) -> bool:
    text = str(body)
    return str(settings.state_dir) not in text and "/uploads/" not in text


def test_teacher_by_job_id_is_kept_as_the_id_and_resolved_for_the_worker(client, auth, db, settings):
    teacher_id = _finished_job(client, auth, db, settings)
    r = client.post("/jobs", json=_distill({"job": teacher_id}), headers=auth)
    assert r.status_code == 201, r.text
    job = client.get(f"/jobs/{r.json()['id']}", headers=auth).json()
    assert job["spec"]["teacher"] == {"job": teacher_id, "model": None}
    assert _no_server_path(job["spec"]["teacher"], settings)
    with session_scope(db) as s:
        run = with_resolved_teacher(JobSpec.model_validate(job["spec"]), settings, s)
    assert run.teacher.checkpoint == str(settings.job_dir(teacher_id)) and run.teacher.job is None


def test_teacher_by_upload_id(client, auth, db, settings):
    up = client.post("/checkpoints", files={"file": ("t.pth", tiny_checkpoint())}, headers=auth).json()
    assert up["id"] == up["name"].removesuffix(".pth")
    r = client.post("/jobs", json=_distill({"upload": up["id"]}), headers=auth)
    assert r.status_code == 201, r.text
    spec = client.get(f"/jobs/{r.json()['id']}", headers=auth).json()["spec"]
    assert spec["teacher"]["upload"] == up["id"] and _no_server_path(spec["teacher"], settings)
    with session_scope(db) as s:
        run = with_resolved_teacher(JobSpec.model_validate(spec), settings, s)
    assert run.teacher.checkpoint == str(settings.checkpoint_root / up["path"])


def test_another_projects_job_or_upload_reads_as_missing(client, auth, db, settings):
    teacher_id = _finished_job(client, auth, db, settings)
    up = client.post("/checkpoints", files={"file": ("t.pth", tiny_checkpoint())}, headers=auth).json()
    beta = _key(db, "beta")
    for teacher, field, message in (
        ({"job": teacher_id}, "teacher.job", f"no job {teacher_id}"),
        ({"upload": up["id"]}, "teacher.upload", f"no upload {up['id']}"),
    ):
        r = client.post("/jobs", json=_distill(teacher), headers=beta)
        assert r.status_code == 422 and error_params(r) == [field], r.text
        assert message in r.text and _no_server_path(r.json(), settings)
    admin = _key(db, "ops", admin=True)  # an admin key sees every project's
    assert client.post("/jobs", json=_distill({"upload": up["id"]}), headers=admin).status_code == 201


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_a_teacher_job_that_did_not_succeed_is_refused(client, auth, db, settings, status):
    teacher_id = _finished_job(client, auth, db, settings, status)
    r = client.post("/jobs", json=_distill({"job": teacher_id}), headers=auth)
    assert r.status_code == 422 and error_params(r) == ["teacher.job"]
    assert f"job {teacher_id} is {status}" in r.text


def test_the_teacher_is_named_exactly_one_way(client, auth, db, settings):
    teacher_id = _finished_job(client, auth, db, settings)
    for teacher in ({"job": teacher_id, "checkpoint": "t.pt"}, {}, {"job": "no/slash"}):
        r = client.post("/jobs", json=_distill(teacher), headers=auth)
        assert r.status_code == 422 and error_params(r)[0].startswith("teacher"), r.text
    r = client.post("/jobs", json=_distill({"job": "nope"}), headers=auth)
    assert r.status_code == 422 and error_params(r) == ["teacher.job"] and "no job nope" in r.text


def test_a_local_run_refuses_a_teacher_by_id_naming_the_field(tiny_synth):
    spec = JobSpec.model_validate({**_distill({"upload": "abc"}), "dataset": {"path": str(tiny_synth)}})
    with pytest.raises(SpecError, match="teacher.upload: the id of an upload of the service") as err:
        load_teacher(spec, None, None, [])
    assert err.value.param == "teacher.upload"
