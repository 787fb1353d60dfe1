"""A YOLO dataset goes through the trainer's path: a train job and a distill job, one step each."""

from __future__ import annotations

from mar_core.run import run_job
from mar_core.spec import JobSpec
from tests.conftest import tiny_spec
from tests.dataset_writers import write_yolo


def test_yolo_dataset_trains_and_distills_one_step(tmp_path, one_thread):
    root = write_yolo(tmp_path / "yolo", n=4)
    dataset = {"format": "yolo", "path": str(root)}
    one_step = {"iterations": 1, "batch_size": 2, "warmup_iters": 1}
    teacher = tiny_spec(root, dataset=dataset, train=one_step)
    report = run_job(teacher, tmp_path / "teacher")
    assert 0.0 <= report["eval"]["AP"] <= 1.0
    assert report["spec"]["dataset"]["format"] == "yolo"

    student = teacher.to_json_dict()
    student.update(kind="distill", teacher={"checkpoint": str(tmp_path / "teacher")})
    report = run_job(JobSpec.model_validate(student), tmp_path / "student")
    assert 0.0 <= report["eval"]["AP"] <= 1.0
    assert (tmp_path / "student" / "model.pt").exists()
