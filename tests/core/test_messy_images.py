"""Messy image files (the generated corpus of ``tests.image_corpus``) through the dataset check
(``inspect_dataset``, ``mar data check``), the trainer's dataset, evaluation and a 2-step job:
each kind gets its expected outcome everywhere. The API's side (upload, submit by path) is in
``tests/api/test_datasets_messy.py``."""

from __future__ import annotations

import json
import logging
import re

import pytest
import torch
from torch import nn

from mar_cli.main import main as cli_main
from mar_core.annotations import inspect_dataset
from mar_core.data import load_dataset
from mar_core.errors import BadImageError, DatasetError
from mar_core.eval.coco_eval import evaluate_model
from mar_core.predict import draw_detections
from mar_core.run import run_job
from mar_core.spec import DatasetSpec
from tests.conftest import tiny_spec
from tests.dataset_writers import write_yolo
from tests.image_corpus import ACCEPTED, KINDS, OBJECT, REFUSED, object_box, write_kind, write_yolo_corpus

W, H = 64, 48


def _spec(root, **fields) -> DatasetSpec:
    return DatasetSpec(format="yolo", path=str(root), **fields)


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_checked_and_loaded_as_expected(tmp_path, kind, caplog):
    root = write_yolo_corpus(tmp_path / "ds", ["jpeg", kind])
    file_name = f"1_{kind}{KINDS[kind][1]}"
    outcome = KINDS[kind][2]
    if outcome == "refused":
        for check in (inspect_dataset, lambda s: load_dataset(s, "train")):
            with pytest.raises(BadImageError, match=f"cannot read image file .*/{file_name}") as e:
                check(_spec(root))
            assert e.value.param == "dataset.path"
        report = inspect_dataset(_spec(root, on_bad_image="skip")).to_dict()
        train = report["splits"]["train"]
        assert (train["images"], train["skipped"], train["boxes"]) == (1, 1, 1)
        assert any("skipped 1 unreadable image" in w and file_name in w for w in report["warnings"])
        assert len(load_dataset(_spec(root, on_bad_image="skip"), "train")) == 1
        return
    report = inspect_dataset(_spec(root)).to_dict()
    train = report["splits"]["train"]
    assert (train["images"], train["boxes"], train["images_checked"], train["clipped"]) == (2, 2, 2, 0)
    repaired = [w for w in report["warnings"] if "repaired" in w]
    if outcome == "repaired":
        assert train["repaired_files"] == [file_name]
        assert len(repaired) == 1 and "1 repaired" in repaired[0] and file_name in repaired[0]
    else:
        assert train["repaired"] == 0 and not repaired, report["warnings"]
    ds = load_dataset(_spec(root), "train")
    index = [ds.image_info(i)["file_name"] for i in range(len(ds))].index(file_name)
    image, target = ds[index]
    assert image.shape == (3, H, W)
    x0, y0, x1, y1 = target["boxes"][0].round().int().tolist()  # the box lands on the object
    assert (x0, y0, x1 - x0, y1 - y0) == object_box(W, H)
    inside = image[:, y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].mean().item() * 255
    assert inside > 0.8 * min(OBJECT), (kind, inside)
    assert image[:, H - 8 :, :8].mean().item() * 255 < 60


def test_cli_check_exit_codes(tmp_path, capsys):
    root = write_yolo_corpus(tmp_path / "ds", ["jpeg", "truncated_jpeg", "garbage"])
    assert cli_main(["data", "check", str(root)]) == 2
    assert "2_garbage.png" in capsys.readouterr().err
    assert cli_main(["data", "check", str(root), "--on-bad-image", "skip"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["splits"]["train"]["skipped"] == 1 and out["splits"]["train"]["repaired"] == 1


class BrightRegionDetector(nn.Module):
    """Finds the one bright object of a corpus image: its box is where the pixels are."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, images):
        out = []
        for image in images:
            ys, xs = torch.nonzero(image.mean(0) > 0.6, as_tuple=True)
            box = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32)
            out.append({"boxes": box, "labels": torch.tensor([1]), "scores": torch.tensor([1.0])})
        return out


def test_exif_rotated_box_on_the_object_in_batch_sample_and_evaluation(tmp_path):
    root = write_yolo_corpus(tmp_path / "ds", ["exif_rotated_jpeg", "jpeg"])
    ds = load_dataset(_spec(root), "train")
    assert ds.image_info(0)["file_name"] == "0_exif_rotated_jpeg.jpg"
    image, target = ds[0]
    box = target["boxes"][0]
    found = BrightRegionDetector()([image])[0]["boxes"][0]
    assert torch.allclose(found, box, atol=1.0), (found, box)  # the object is where the label says
    # the drawn sample: the outline is drawn around the object, the object inside untouched
    drawn = draw_detections(image, {**target, "scores": torch.ones(1)}, ["thing"])
    x0, y0, x1, y1 = box.round().int().tolist()
    assert tuple(drawn[:, y0, (x0 + x1) // 2].tolist()) != tuple(drawn[:, y0 + 4, (x0 + x1) // 2].tolist())
    assert drawn[:, y0 + 4 : y1 - 2, x0 + 2 : x1 - 2].float().mean() > 0.8 * min(OBJECT)
    # evaluation reads the same displayed image: a detector that finds the object scores AP 1
    metrics = evaluate_model(BrightRegionDetector(), ds, torch.device("cpu")).metrics
    assert metrics["AP50"] == pytest.approx(1.0)


def test_file_broken_after_the_check_fails_or_is_skipped(tmp_path, caplog):
    root = write_yolo(tmp_path / "ds", n=3)
    for policy in ("refuse", "skip"):
        ds = load_dataset(_spec(root, on_bad_image=policy), "train")
        (root / "images" / "train" / "train_1.png").write_bytes(b"")  # changed on disk
        if policy == "refuse":
            with pytest.raises(BadImageError, match=r"train_1\.png: the file is empty"):
                ds[1]
            write_yolo(tmp_path / "ds", n=3)
            continue
        with caplog.at_level(logging.WARNING):
            image, target = ds[1]
        assert target["image_id"] == ds.image_info(2)["id"]  # the next readable image instead
        assert [p.endswith("train_1.png") for p in ds.skipped_at_load] == [True]
        assert "train_1.png" in caplog.text


def test_two_step_jobs_on_the_corpus(tmp_path, one_thread, caplog):
    """Every accepted kind trains; under skip the refused kinds are left out, counted."""
    root = write_yolo_corpus(tmp_path / "ds", ACCEPTED + REFUSED)
    two_steps = {"iterations": 2, "batch_size": 4, "warmup_iters": 1}
    with pytest.raises(DatasetError, match="empty.jpg|garbage.png"):
        run_job(
            tiny_spec(root, dataset={"format": "yolo", "path": str(root)}, train=two_steps), tmp_path / "r"
        )
    assert not (tmp_path / "r" / "model.pt").exists()
    dataset = {"format": "yolo", "path": str(root), "on_bad_image": "skip"}
    with caplog.at_level(logging.WARNING):
        report = run_job(tiny_spec(root, dataset=dataset, train=two_steps), tmp_path / "s")
    assert 0.0 <= report["eval"]["AP"] <= 1.0 and (tmp_path / "s" / "model.pt").exists()
    assert report["spec"]["dataset"]["on_bad_image"] == "skip"
    assert "skipped 2 unreadable images (11_empty.jpg (the file is empty), 12_garbage.png" in caplog.text


def test_duplicates_leakage_and_orphan_labels_warned(tmp_path):
    root = write_yolo(tmp_path / "ds", n=3)
    train, val = root / "images" / "train", root / "images" / "val"
    (train / "copy.png").write_bytes((train / "train_0.png").read_bytes())
    (val / "leak.png").write_bytes((train / "train_1.png").read_bytes())
    (root / "labels" / "train" / "deleted_image.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    report = inspect_dataset(_spec(root)).to_dict()
    t, v = report["splits"]["train"], report["splits"]["val"]
    assert (t["duplicates"], t["leaked"], t["orphan_labels"]) == (1, 0, 1)
    assert (v["duplicates"], v["leaked"], v["orphan_labels"]) == (0, 1, 0)
    text = "\n".join(report["warnings"])
    assert "1 duplicate image, same bytes as another (train_0.png = copy.png)" in text
    assert "1 image also in another split (leakage: leak.png = train/train_1.png)" in text
    assert "1 label file without an image (ignored: labels/train/deleted_image.txt)" in text


def test_voc_annotation_without_image_warned(tmp_path):
    from tests.dataset_writers import write_voc

    root = write_voc(tmp_path / "voc", n=2)
    (root / "Annotations" / "gone.xml").write_text("<annotation><filename>gone.jpg</filename></annotation>")
    report = inspect_dataset(DatasetSpec(format="voc", path=str(root)))
    assert report.orphans == ["Annotations/gone.xml"]
    assert any("without an image" in w and "gone.xml" in w for w in report.warnings)


def test_write_kind_names_the_file(tmp_path):
    assert write_kind(tmp_path, "png_named_jpg").name == "png_named_jpg.jpg"


def test_labels_of_a_missing_image_refused_or_skipped(tmp_path):
    """A COCO record (or a listed VOC XML) whose image is not in the export: refused naming it,
    or under skip left out with its boxes, named in the warnings; the trainer agrees."""
    from tests.dataset_writers import write_coco, write_voc

    for spec, gone in (
        (DatasetSpec(path=str(write_coco(tmp_path / "coco"))), tmp_path / "coco" / "train" / "train_1.png"),
        (
            DatasetSpec(format="voc", path=str(write_voc(tmp_path / "voc"))),
            tmp_path / "voc" / "JPEGImages" / "train_1.png",
        ),
    ):
        gone.unlink()
        with pytest.raises(DatasetError, match=r"image file not found: .*train_1\.(png|jpg)"):
            inspect_dataset(spec)
        skip = spec.model_copy(update={"on_bad_image": "skip"})
        report = inspect_dataset(skip)
        train = report.splits["train"]
        [skipped] = train.to_dict()["skipped_files"]
        assert (train.images, train.boxes) == (2, 3)
        assert re.fullmatch(r"train_1\.(png|jpg) \(file not found\)", skipped)
        assert any(f"skipped 1 unreadable image ({skipped})" in w for w in report.warnings)
        assert len(load_dataset(skip, "train")) == 2


def test_predict_reads_images_as_displayed(tmp_path):
    from mar_core.errors import SpecError
    from mar_core.predict import load_image

    assert load_image(write_kind(tmp_path, "exif_rotated_jpeg", W, H)).shape == (3, H, W)
    with pytest.raises(SpecError, match=r"garbage\.png: not a JPEG") as e:
        load_image(write_kind(tmp_path, "garbage", W, H))
    assert e.value.param == "images"
