"""Each fault ``inspect_dataset`` refuses, named: the file and the image or line in the message,
the spec field in ``param``; the trainer (``load_dataset``) refuses the same faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mar_core.annotations import inspect_dataset
from mar_core.data import load_dataset
from mar_core.errors import DatasetError
from mar_core.spec import DatasetSpec
from tests.dataset_writers import write_coco, write_voc, write_yolo


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _refused(spec: DatasetSpec, match: str, param: str = "dataset.path", trainer: bool = True) -> None:
    with pytest.raises(DatasetError, match=match) as e:
        inspect_dataset(spec)
    assert e.value.param == param
    if trainer:
        split = "val" if param == "dataset.val_split" else "train"
        with pytest.raises(DatasetError, match=match) as e:
            load_dataset(spec, split)
        assert e.value.param == param


def _coco(tmp_path: Path) -> tuple[DatasetSpec, Path]:
    root = write_coco(tmp_path)
    return DatasetSpec(path=str(root)), root / "annotations" / "instances_train.json"


def test_missing_image(tmp_path):
    spec, _ = _coco(tmp_path)
    (tmp_path / "train" / "train_1.png").unlink()
    _refused(spec, r"image file not found: .*train/train_1\.png")


def test_undecodable_image(tmp_path):
    spec, _ = _coco(tmp_path)
    (tmp_path / "train" / "train_2.png").write_bytes(b"not a png")
    _refused(spec, r"cannot read image file .*train/train_2\.png")


def test_unknown_category_id(tmp_path):
    spec, ann = _coco(tmp_path)
    _edit_json(ann, lambda d: d["annotations"][0].update(category_id=9))
    _refused(spec, r"instances_train\.json: annotation 1 has unknown category_id 9")


def test_unknown_image_id(tmp_path):
    spec, ann = _coco(tmp_path)
    _edit_json(ann, lambda d: d["annotations"][0].update(image_id=77))
    _refused(spec, r"instances_train\.json: annotation 1 refers to unknown image_id 77")


def test_duplicate_image_id(tmp_path):
    spec, ann = _coco(tmp_path)
    _edit_json(ann, lambda d: d["images"][1].update(id=1))
    _refused(spec, r"instances_train\.json: duplicate image id 1 \(train_1\.png\)")


def test_empty_split(tmp_path):
    spec, _ = _coco(tmp_path)
    _edit_json(tmp_path / "annotations" / "instances_val.json", lambda d: d.update(images=[], annotations=[]))
    _refused(spec, "the split has no images", param="dataset.val_split")


def test_broken_json(tmp_path):
    spec, ann = _coco(tmp_path)
    ann.write_text('{"images": [{"id": 1,')
    _refused(spec, r"instances_train\.json is not valid JSON")


def test_missing_split(tmp_path):
    root = write_coco(tmp_path, splits=("train",))
    _refused(DatasetSpec(path=str(root)), "annotation file not found for split 'val'", "dataset.val_split")


def test_class_names_differ_between_splits(tmp_path):
    spec, _ = _coco(tmp_path)
    _edit_json(
        tmp_path / "annotations" / "instances_val.json", lambda d: d["categories"][0].update(name="lion")
    )
    _refused(spec, "the splits disagree on the classes", param="dataset.val_split", trainer=False)


def test_broken_voc_xml(tmp_path):
    root = write_voc(tmp_path)
    (root / "Annotations" / "val_0.xml").write_text("<annotation><size>")
    _refused(DatasetSpec(format="voc", path=str(root)), r"cannot parse VOC annotation file .*val_0\.xml")


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (
            "7 0.5 0.5 0.1 0.1",
            r"labels/train/train_1\.txt line 2: class 7 is not in data.yaml names \(0\.\.2\)",
        ),
        ("1 0.5 0.5 0.1", r"labels/train/train_1\.txt line 2: expected 5 numbers"),
        (
            "1 0.5 1.2 0.1 0.1",
            r"labels/train/train_1\.txt line 2: coordinates 0\.5 1\.2 0\.1 0\.1 are not normalised",
        ),
        ("1 0.5 x 0.1 0.1", r"labels/train/train_1\.txt line 2: not a number"),
        ("1.5 0.5 0.5 0.1 0.1", r"labels/train/train_1\.txt line 2: class 1\.5 is not in"),
    ],
)
def test_bad_yolo_label_line(tmp_path, line, match):
    root = write_yolo(tmp_path)
    label = root / "labels" / "train" / "train_1.txt"
    label.write_text(label.read_text() + line + "\n")
    _refused(DatasetSpec(format="yolo", path=str(root)), match)


def test_yolo_coordinate_within_tolerance_is_clipped(tmp_path):
    root = write_yolo(tmp_path)
    label = root / "labels" / "train" / "train_1.txt"
    label.write_text(label.read_text() + "1 0.99 0.5 0.05 0.1\n")  # reaches 1.015: clipped
    train = inspect_dataset(DatasetSpec(format="yolo", path=str(root))).splits["train"]
    assert (train.boxes, train.validation.num_clipped) == (5, 1)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("names: [a, b\ntrain: images/train", r"data\.yaml is not valid YAML"),
        ("train: images/train\nval: images/val\n", r"data\.yaml: 'names' must be"),
        ("train: images/train\nval: images/val\nnames: {0: a, 2: b}", r"data\.yaml: 'names' must be"),
        (
            "train: ../../outside\nval: images/val\nnames: [a]",
            r"data\.yaml: train: '\.\./\.\./outside' lies outside",
        ),
    ],
)
def test_broken_data_yaml(tmp_path, text, match):
    root = write_yolo(tmp_path / "d")
    (root / "data.yaml").write_text(text)
    _refused(DatasetSpec(format="yolo", path=str(root)), match)


def test_yolo_split_missing_from_yaml(tmp_path):
    root = write_yolo(tmp_path, splits=("train",))
    _refused(
        DatasetSpec(format="yolo", path=str(root)), r"data\.yaml has no 'val' entry", "dataset.val_split"
    )


def test_degenerate_and_outside_boxes_counted_not_refused(tmp_path):
    spec, ann = _coco(tmp_path)

    def edit(d):
        d["annotations"][0]["bbox"] = [60, 40, 20, 20]  # train_1 is 50 x 40: starts outside, dropped
        d["annotations"][1]["bbox"] = [-5, -5, 20, 20]  # clipped

    _edit_json(ann, edit)
    report = inspect_dataset(spec)
    train = report.splits["train"]
    assert (train.boxes, train.validation.num_dropped, train.validation.num_clipped) == (3, 1, 1)
    assert any("dropped 1 degenerate box (train_1.png), clipped 1" in w for w in report.warnings)
    ds = load_dataset(spec, "train")
    assert (ds.validation.num_dropped, ds.validation.num_clipped) == (1, 1)
