"""An uploaded dataset through the whole service: ``mar datasets upload`` of a folder, a job
naming it by id trains on a worker, the dataset cannot be deleted until the job ended."""

from __future__ import annotations

import json

import pytest

from api.datasets_cmd import pack_folder
from tests.image_corpus import write_yolo_corpus
from tests.integration.conftest import DATASET

pytestmark = pytest.mark.integration


def test_uploaded_dataset_trains_a_job_by_id(stack, tiny_spec, data_root, tmp_path):
    dataset = stack.client.upload_dataset(
        pack_folder(data_root / DATASET, tmp_path), name="syn-upload"
    ).model_dump()
    assert dataset["format"] == "coco" and {"train", "val"} <= set(dataset["splits"])
    assert dataset["report"]["splits"]["train"]["images"] == 16

    spec = tiny_spec(iterations=2, name="by-id", eval_max_images=2)
    spec["dataset"] = {"id": dataset["id"]}
    job = stack.submit(spec)
    with pytest.raises(Exception, match="unfinished jobs"):
        stack.client.delete_dataset(dataset["id"])
    job = stack.wait_terminal(job["id"])
    assert job["status"] == "succeeded", (job, stack.log_tails())
    assert job["spec"]["dataset"]["id"] == dataset["id"]
    report = json.loads(stack.client.download(job["id"], "report.json", tmp_path).read_text())
    assert (
        report["spec"] == job["spec"] and job["spec"]["dataset"]["path"] is None
    )  # as submitted: no server path
    assert [p.step for p in stack.client.metrics(job["id"]).series["loss/total"]] == [1, 2]

    stack.client.delete_dataset(dataset["id"])
    assert all(d.id != dataset["id"] for d in stack.client.list_datasets().data)


def test_messy_upload_trains_on_a_worker(stack, tiny_spec, tmp_path):
    """A YOLO export with a truncated JPEG (repaired), a phone photo stored sideways, a CMYK JPEG
    and an empty file (skipped): the upload names what it did, a job on it succeeds."""
    kinds = ["jpeg", "truncated_jpeg", "exif_rotated_jpeg", "cmyk_jpeg", "empty"]
    folder = write_yolo_corpus(tmp_path / "messy", kinds)
    dataset = stack.client.upload_dataset(pack_folder(folder, tmp_path), on_bad_image="skip").model_dump()
    train = dataset["report"]["splits"]["train"]
    assert train["repaired_files"] == ["1_truncated_jpeg.jpg"]
    assert train["skipped_files"] == ["4_empty.jpg (the file is empty)"] and train["images"] == 4
    assert any("1 repaired" in w and "1_truncated_jpeg.jpg" in w for w in dataset["report"]["warnings"])

    spec = tiny_spec(iterations=2, name="messy", eval_max_images=2)
    spec["dataset"] = {"id": dataset["id"]}
    job = stack.wait_terminal(stack.submit(spec)["id"])
    assert job["status"] == "succeeded", (job, stack.log_tails())
    assert job["spec"]["dataset"]["on_bad_image"] == "skip"
