"""Every layout the readers take gives the same data: COCO (its own, Roboflow, CVAT, a named
file), VOC, YOLO (list or dict ``names``, both folder layouts); format and split detection."""

from __future__ import annotations

import json

import pytest

from mar_cli.main import main as cli_main
from mar_core.annotations import detect_format, find_splits, inspect_dataset, read_split
from mar_core.data import load_dataset
from mar_core.errors import DatasetError
from mar_core.spec import DatasetSpec
from tests.dataset_writers import CLASSES, expected, write_coco, write_voc, write_yolo

LAYOUTS = {
    "coco": lambda root: write_coco(root),
    "roboflow": lambda root: write_coco(root, layout="roboflow"),
    "cvat": lambda root: write_coco(root, layout="cvat"),
    "voc": lambda root: write_voc(root),
    "yolo": lambda root: write_yolo(root),
    "yolo-dict-names": lambda root: write_yolo(root, names_as_dict=True),
    "yolo-split-first": lambda root: write_yolo(root, layout="split-first"),
}


def _boxes_by_file(data: dict) -> dict[str, list[tuple[str, list[float]]]]:
    names = {c["id"]: c["name"] for c in data["categories"]}
    files = {img["id"]: img["file_name"].rsplit("/", 1)[-1] for img in data["images"]}
    out: dict[str, list] = {f: [] for f in files.values()}
    for a in data["annotations"]:
        out[files[a["image_id"]]].append((names[a["category_id"]], [round(v, 3) for v in a["bbox"]]))
    return {k: sorted(v) for k, v in out.items()}


def _expected_boxes(split: str) -> dict[str, list[tuple[str, list[float]]]]:
    return {
        img.file_name: sorted((CLASSES[b.cls], [b.x, b.y, b.w, b.h]) for b in img.boxes)
        for img in expected(split)
    }


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_each_layout_reads_the_same_data(tmp_path, layout):
    root = LAYOUTS[layout](tmp_path / layout)
    fmt = detect_format(root)
    assert fmt == layout.split("-")[0] if layout.startswith(("voc", "yolo")) else fmt == "coco"
    spec = DatasetSpec(format=fmt, path=str(root))
    for split in ("train", "val"):
        data, images_dir, _ = read_split(spec, split)
        assert _boxes_by_file(data) == _expected_boxes(split)
        assert all((images_dir / img["file_name"]).is_file() for img in data["images"])
    report = inspect_dataset(spec).to_dict()
    assert report["format"] == fmt
    train = report["splits"]["train"]
    assert (train["images"], train["boxes"], train["images_without_boxes"]) == (3, 4, 1)
    assert sorted(train["class_names"]) == sorted(CLASSES)
    assert train["boxes_per_class"] == {"cat": 1, "dog": 1, "bird": 2}
    assert train["sizes"] == {"small": 4, "medium": 0, "large": 0}
    assert report["warnings"] == ["train: 1 of 3 images have no boxes", "val: 1 of 3 images have no boxes"]


def test_roboflow_valid_split_found_as_val(tmp_path):
    root = write_coco(tmp_path, layout="roboflow")
    assert find_splits(root, "coco") == ["train", "valid"]
    ds = load_dataset(DatasetSpec(path=str(root)), "val")
    assert len(ds) == 3 and ds.images_dir == root / "valid"


def test_cvat_images_per_split_folder(tmp_path):
    root = write_coco(tmp_path, layout="cvat")
    (root / "images").rename(root / "flat")
    (root / "images").mkdir()
    (root / "flat").rename(root / "images" / "train")
    data, images_dir, _ = read_split(DatasetSpec(path=str(root)), "train")
    assert images_dir == root / "images" / "train"


def test_annotation_file_named_in_the_spec(tmp_path):
    root = write_coco(tmp_path)
    (root / "annotations" / "instances_train.json").rename(root / "train" / "labels-train.json")
    spec = DatasetSpec(path=str(root), annotation_file="{split}/labels-{split}.json")
    data, images_dir, _ = read_split(spec, "train")
    assert len(data["images"]) == 3 and images_dir == root / "train"
    assert inspect_dataset(spec, splits=["train"]).splits["train"].source == "train/labels-train.json"
    with pytest.raises(DatasetError, match="labels-val.json") as e:
        inspect_dataset(spec)
    assert e.value.param == "dataset.val_split"
    outside = DatasetSpec(path=str(root), annotation_file="../{split}.json")
    with pytest.raises(DatasetError, match="outside the dataset folder") as e:
        inspect_dataset(outside)
    assert e.value.param == "dataset.annotation_file"


def test_voc_find_splits_skips_per_class_lists(tmp_path):
    root = write_voc(tmp_path)
    (root / "ImageSets" / "Main" / "cat_train.txt").write_text("train_0 1\n")
    assert find_splits(root, "voc") == ["train", "val"]


def test_yolo_splits_and_roboflow_parent_paths(tmp_path):
    root = write_yolo(tmp_path, splits=("train", "val", "test"), layout="split-first")
    assert find_splits(root, "yolo") == ["train", "val", "test"]
    # Roboflow writes "../train/images" with the yaml in the dataset folder
    (root / "data.yaml").write_text(
        "train: ../train/images\nval: ../val/images\nnc: 3\nnames: ['cat', 'dog', 'bird']\n"
    )
    data, images_dir, _ = read_split(DatasetSpec(format="yolo", path=str(root)), "val")
    assert images_dir == root / "val" / "images" and len(data["images"]) == 3


def test_yolo_absolute_path_of_another_machine_ignored(tmp_path):
    root = write_yolo(tmp_path)
    text = (root / "data.yaml").read_text().replace("path: .", "path: /home/someone/datasets/x")
    (root / "data.yaml").write_text(text)
    assert len(read_split(DatasetSpec(format="yolo", path=str(root)), "train")[0]["images"]) == 3


def test_detect_format_refuses_an_unknown_folder(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DatasetError, match="cannot tell the format") as e:
        detect_format(tmp_path)
    assert e.value.param == "dataset.format"


def test_path_unset_is_refused_naming_the_field():
    spec = DatasetSpec(id="abc")
    for call in (lambda: load_dataset(spec, "train"), lambda: inspect_dataset(spec)):
        with pytest.raises(DatasetError, match="dataset.path") as e:
            call()
        assert e.value.param == "dataset.path"


def test_trainer_reads_yolo_as_coco_dict(tmp_path):
    root = write_yolo(tmp_path)
    ds = load_dataset(DatasetSpec(format="yolo", path=str(root)), "train")
    assert ds.class_names == list(CLASSES) and ds.num_classes == 4
    target = ds.get_target(1)  # train_1: one box of class dog at (2, 1, 12, 10)
    assert target["labels"].tolist() == [2]
    assert target["boxes"].tolist() == [pytest.approx([2, 1, 14, 11], abs=1e-4)]


def test_cli_check_detects_yolo(tmp_path, capsys):
    root = write_yolo(tmp_path)
    assert cli_main(["data", "check", str(root), "--check-images", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["format"] == "yolo" and out["splits"]["val"]["boxes"] == 4
    (root / "labels" / "train" / "train_1.txt").write_text("9 0.5 0.5 0.1 0.1\n")
    assert cli_main(["data", "check", str(root)]) == 2
    assert "labels/train/train_1.txt line 1: class 9" in capsys.readouterr().err
