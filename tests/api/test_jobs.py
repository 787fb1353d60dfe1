"""POST/GET /jobs, GET /jobs/{id}, POST /jobs/{id}/cancel through HTTP, with the 4xx cases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from api.db import claims_repo
from api.db.session import session_scope
from api.services import spec_checks
from tests.api.conftest import broker_messages, distill_spec, error_params, make_coco, train_spec


def test_create_job_queues_and_nudges(client, auth, settings):
    r = client.post("/jobs", json=train_spec(name="first"), headers=auth)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "queued" and job["attempt"] == 0 and job["name"] == "first"
    assert job["spec"]["dataset"]["path"] == str(settings.data_roots[0] / "coco")  # made absolute
    assert broker_messages(settings) == [{"task": "mar.run_job", "args": [job["id"]], "queue": "mar-gpu"}]
    got = client.get(f"/jobs/{job['id']}", headers=auth)
    assert got.status_code == 200 and got.json()["id"] == job["id"]


def test_distill_job_with_teacher(client, auth, teacher):
    r = client.post("/jobs", json=distill_spec(teacher), headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["teacher"]["checkpoint"] == str(teacher)
    assert r.json()["spec"]["distill"]["method"] == "mar"


def test_broker_down_keeps_the_job_queued(client, app, auth, db):
    app.state.nudge = lambda job_id, pool=None: False  # what send_run_job answers when the broker is down
    r = client.post("/jobs", json=train_spec(), headers=auth)
    assert r.status_code == 201
    with session_scope(db) as s:
        assert claims_repo.queued_job_ids(s) == [r.json()["id"]]


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"train": {"lr": -1}}, "train.lr"),
        ({"train": {"iterations": 0}}, "train.iterations"),
        ({"model": {"arch": "yolo"}}, "model.arch"),
        ({"student": {"backbone": "vgg"}}, "student.backbone"),
        ({"dataset": {"format": "kitti", "path": "coco"}}, "dataset.format"),
        ({"dataset": {"format": "coco"}}, "dataset.path"),
        ({"kind": "segment"}, "kind"),
        ({"bogus": 1}, "bogus"),
        ({"kind": "distill"}, "teacher"),
        ({"distill": {"method": "mar"}}, "teacher"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_bad_spec_is_422_naming_the_field(client, auth, patch, param):
    r = client.post("/jobs", json=train_spec(**patch), headers=auth)
    assert r.status_code == 422, r.text
    assert param in error_params(r)
    item = r.json()["detail"][0]
    assert item["code"] == "invalid_spec" and item["message"] and item["loc"]


def test_unknown_distill_method_names_its_field(client, auth, teacher):
    r = client.post("/jobs", json=distill_spec(teacher, distill={"method": "magic"}), headers=auth)
    assert r.status_code == 422 and "distill.method" in error_params(r)


def test_a_field_of_another_method_is_422_naming_it_and_both_methods(client, auth, teacher):
    r = client.post(
        "/jobs", json=distill_spec(teacher, distill={"method": "cwd", "alpha": 0.1}), headers=auth
    )
    assert r.status_code == 422, r.text
    (item,) = r.json()["detail"]
    assert item["code"] == "invalid_spec" and item["param"] == "distill.alpha"
    assert item["message"] == "alpha is a field of method mar, not of cwd"
    assert item["loc"] == ["body", "distill", "alpha"]  # no union tag ("cwd") in the path


def test_distiller_search_spec_is_accepted_and_its_fields_checked(client, auth, teacher):
    r = client.post(
        "/jobs", json=distill_spec(teacher, distill={"method": "auto", "budget": 3}), headers=auth
    )
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["distill"] == {
        "method": "auto",
        "adapter": "auto",
        "kd_warmup_iters": None,
        "budget": 3.0,
        "selection_fraction": 0.15,
        "candidates": None,
    }
    for bad, param in (
        ({"candidates": ["mar", "nope"]}, "distill.candidates"),
        ({"budget": 1.0}, "distill.budget"),
        ({"auto_scale": 9}, "distill.auto_scale"),
        ({"alpha": 0.1}, "distill.alpha"),
    ):
        r = client.post("/jobs", json=distill_spec(teacher, distill={"method": "auto", **bad}), headers=auth)
        assert r.status_code == 422 and error_params(r) == [param], (bad, r.text)


def test_body_not_json_is_422(client, auth):
    r = client.post("/jobs", content=b"{nope", headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 422


@pytest.mark.parametrize(
    ("dataset", "param"),
    [
        ({"path": "/etc"}, "dataset.path"),
        ({"path": "../../outside"}, "dataset.path"),
        ({"path": "missing"}, "dataset.path"),
        ({"path": "coco", "val_split": "test"}, "dataset.val_split"),
        ({"path": "coco", "train_split": "nope"}, "dataset.train_split"),
        ({"path": "voc"}, "dataset.train_split"),  # a VOC folder named as coco: no annotations/
        ({"path": "coco", "format": "voc"}, "dataset.path"),
        ({"path": "voc", "format": "voc", "val_split": "test"}, "dataset.val_split"),
        ({"path": "coco", "images_dir": "../voc"}, "dataset.images_dir"),
        ({"path": "coco", "images_dir": "nothere"}, "dataset.images_dir"),
    ],
)
def test_dataset_checks_are_422(client, auth, dataset, param):
    r = client.post("/jobs", json=train_spec(dataset=dataset), headers=auth)
    assert r.status_code == 422, r.text
    assert error_params(r) == [param]


def test_dataset_symlink_out_of_root_is_refused(client, auth, settings, tmp_path):
    outside = tmp_path / "elsewhere"
    (outside / "annotations").mkdir(parents=True)
    os.symlink(outside, settings.data_roots[0] / "link")
    r = client.post("/jobs", json=train_spec(dataset={"path": "link"}), headers=auth)
    assert r.status_code == 422 and error_params(r) == ["dataset.path"]
    assert r.json()["detail"][0]["code"] == "path_outside_root"


def test_dataset_split_folder_linked_out_of_root_is_refused(client, auth, settings, tmp_path):
    """Inside the dataset: the API's check walks it (tests/core/test_data_containment.py has
    every position); the answer names the link, not the server's absolute paths."""
    ds = make_coco(settings.data_roots[0] / "linked")
    (ds / "train").rename(tmp_path / "train")
    (ds / "train").symlink_to(tmp_path / "train", target_is_directory=True)
    r = client.post("/jobs", json=train_spec(dataset={"path": "linked"}), headers=auth)
    assert r.status_code == 422 and error_params(r) == ["dataset.path"]
    assert "'train'" in r.text and str(tmp_path) not in r.text


def test_voc_dataset_accepted(client, auth):
    r = client.post("/jobs", json=train_spec(dataset={"format": "voc", "path": "voc"}), headers=auth)
    assert r.status_code == 201, r.text


def test_teacher_checks_are_422(client, auth, settings, tmp_path: Path):
    outside = tmp_path / "outside.pt"
    outside.write_bytes(b"x")
    no_json = settings.checkpoint_root / "run"
    no_json.mkdir()
    for ckpt in (str(outside), "missing.pt", str(no_json), "../state/mar.db"):
        r = client.post("/jobs", json=distill_spec(Path(ckpt)), headers=auth)
        assert r.status_code == 422, (ckpt, r.text)
        assert error_params(r) == ["teacher.checkpoint"], ckpt


def test_teacher_from_a_previous_job_folder(client, auth, settings):
    previous = client.post("/jobs", json=train_spec(), headers=auth).json()["id"]
    run = settings.job_dir(previous) / "output"
    run.mkdir(parents=True)
    (run / "model.json").write_text("{}")
    r = client.post("/jobs", json=distill_spec(run), headers=auth)
    assert r.status_code == 201, r.text
    stray = settings.job_dir("0" * 32)  # a folder of no job (of this project) reads as missing
    stray.mkdir(parents=True)
    (stray / "model.json").write_text("{}")
    r = client.post("/jobs", json=distill_spec(stray), headers=auth)
    assert r.status_code == 422 and error_params(r) == ["teacher.checkpoint"]


def test_idempotency_key(client, auth, settings):
    headers = {**auth, "Idempotency-Key": "abc-1"}
    first = client.post("/jobs", json=train_spec(), headers=headers)
    assert first.status_code == 201
    # same body (other key order, a default spelled out) -> the same job, 200
    again = client.post(
        "/jobs", json={"train": {"iterations": 5, "lr": 0.01}, **train_spec()}, headers=headers
    )
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = client.post("/jobs", json=train_spec(seed=7), headers=headers)
    assert other.status_code == 422 and error_params(other) == ["Idempotency-Key"]
    assert len(broker_messages(settings)) == 1
    new_key = client.post("/jobs", json=train_spec(), headers={**auth, "Idempotency-Key": "abc-2"})
    assert new_key.status_code == 201 and new_key.json()["id"] != first.json()["id"]


def test_get_unknown_job_is_404(client, auth):
    r = client.get("/jobs/does-not-exist", headers=auth)
    assert r.status_code == 404 and r.json()["detail"][0]["code"] == "not_found"


def test_list_jobs_pagination_and_filter(client, auth):
    ids = [client.post("/jobs", json=train_spec(), headers=auth).json()["id"] for _ in range(5)]
    client.post(f"/jobs/{ids[1]}/cancel", headers=auth)
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/jobs", params=params, headers=auth).json()
        assert page["count"] == len(page["data"]) <= 2
        seen += [j["id"] for j in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    cancelled = client.get("/jobs", params={"status": "cancelled"}, headers=auth).json()
    assert [j["id"] for j in cancelled["data"]] == [ids[1]]
    both = client.get("/jobs", params={"status": "cancelled,queued"}, headers=auth).json()
    assert both["count"] == 5


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"status": "done"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"cursor": "zz"}, "cursor"),
    ],
)
def test_list_jobs_bad_query_is_422(client, auth, params, param):
    r = client.get("/jobs", params=params, headers=auth)
    assert r.status_code == 422 and error_params(r) == [param]


def test_cancel(client, auth, db):
    queued = client.post("/jobs", json=train_spec(), headers=auth).json()["id"]
    running = client.post("/jobs", json=train_spec(), headers=auth).json()["id"]
    with session_scope(db) as s:
        claims_repo.claim_job(s, running, "w1", 60)
        claims_repo.mark_running(s, running, "w1")
    r = client.post(f"/jobs/{queued}/cancel", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = client.post(f"/jobs/{running}/cancel", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "cancelling" and r.json()["cancel_requested"]
    again = client.post(f"/jobs/{queued}/cancel", headers=auth)
    assert again.status_code == 409 and again.json()["detail"][0]["code"] == "invalid_transition"
    with session_scope(db) as s:
        claims_repo.finish_job(s, running, "w1", "cancelled")
    assert client.post(f"/jobs/{running}/cancel", headers=auth).status_code == 409
    assert client.post("/jobs/nope/cancel", headers=auth).status_code == 404


def test_pretrained_start_files_stay_inside_the_roots(client, auth, settings, tmp_path):
    outside = tmp_path / "outside.pth"
    outside.write_bytes(b"x")
    inside = settings.checkpoint_root / "r18.pth"
    inside.parent.mkdir(parents=True, exist_ok=True)
    inside.write_bytes(b"x")
    for field in ("backbone_weights", "init_checkpoint"):
        for ref in (str(outside), "missing.pth"):
            r = client.post("/jobs", json=train_spec(model={field: ref}), headers=auth)
            assert r.status_code == 422, (field, ref, r.text)
            assert error_params(r) == [f"model.{field}"]
    r = client.post("/jobs", json=train_spec(model={"backbone_weights": "r18.pth"}), headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["model"]["backbone_weights"] == str(
        inside
    )  # made absolute, as the worker runs it
    named = client.post(
        "/jobs", json=train_spec(model={"backbone_weights": "ResNet18_Weights.IMAGENET1K_V1"}), headers=auth
    )
    assert named.status_code == 201  # resolved by the worker under $TORCH_HOME
    assert named.json()["spec"]["model"]["norm"] == "frozen_batch"


def test_a_specs_mlflow_uri_must_be_a_tracking_server(client, auth):
    local = train_spec(tracking={"mlflow": {"uri": "sqlite:////srv/mar/artifacts/other-job/mlflow.db"}})
    r = client.post("/jobs", json=local, headers=auth)
    assert r.status_code == 422 and error_params(r) == ["tracking.mlflow.uri"], r.text
    server = train_spec(tracking={"mlflow": {"uri": "https://mlflow.example:5000", "experiment": "kd"}})
    r = client.post("/jobs", json=server, headers=auth)
    assert r.status_code == 201 and r.json()["spec"]["tracking"]["mlflow"]["experiment"] == "kd"


def test_an_unchanged_dataset_is_read_once_and_a_changed_file_is_seen(client, auth, settings, monkeypatch):
    """POST /jobs re-reads a dataset named by path only when a file changed (path, size, mtime)."""
    calls = []
    real = spec_checks.inspect_dataset
    monkeypatch.setattr(spec_checks, "inspect_dataset", lambda *a, **k: calls.append(1) or real(*a, **k))
    make_coco(settings.data_roots[0] / "fresh")
    body = train_spec(dataset={"path": "fresh"})
    assert client.post("/jobs", json=body, headers=auth).status_code == 201
    assert client.post("/jobs", json=body, headers=auth).status_code == 201
    assert len(calls) == 1
    (settings.data_roots[0] / "fresh" / "val" / "a.png").write_bytes(b"no longer a png")
    r = client.post("/jobs", json=body, headers=auth)
    assert r.status_code == 422 and error_params(r) == ["dataset.path"], r.text
    assert len(calls) == 2


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:5000",
        "http://localhost:5000",
        "http://169.254.169.254/latest",
        "http://[::1]:5000",
        "http://0.0.0.0",
    ],
)
def test_a_specs_mlflow_uri_may_not_reach_the_worker_itself_or_a_metadata_service(client, auth, uri):
    r = client.post("/jobs", json=train_spec(tracking={"mlflow": {"uri": uri}}), headers=auth)
    assert r.status_code == 422 and error_params(r) == ["tracking.mlflow.uri"], r.text
    assert "MAR_MLFLOW_ALLOWED_HOSTS" in r.text


def test_mlflow_hosts_follow_the_allow_list_when_one_is_set(client, auth, settings):
    internal = train_spec(tracking={"mlflow": {"uri": "http://10.1.2.3:5000"}})
    assert client.post("/jobs", json=internal, headers=auth).status_code == 201  # an internal server
    settings.mlflow_allowed_hosts = ["localhost", "*.tracking.example"]
    for uri, status in [
        ("http://localhost:5000", 201),  # named by the operator
        ("https://ml.tracking.example", 201),
        ("http://10.1.2.3:5000", 422),  # not in the list
    ]:
        r = client.post("/jobs", json=train_spec(tracking={"mlflow": {"uri": uri}}), headers=auth)
        assert r.status_code == status, (uri, r.text)
