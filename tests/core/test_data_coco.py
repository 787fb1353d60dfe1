"""COCO-format loading: parsing, category remap, targets, COCOeval compatibility, errors."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from pycocotools.cocoeval import COCOeval

from mar_cli.main import main as cli_main
from mar_core.data import DetectionDataset, build_eval_loader, dataset_summary, load_coco, load_dataset
from mar_core.errors import DatasetError, PathOutsideRootError
from mar_core.spec import DatasetSpec

# original COCO-style ids with gaps, listed out of order
CATEGORIES = [{"id": 90, "name": "toothbrush"}, {"id": 3, "name": "car"}, {"id": 18, "name": "dog"}]


def _write(root: Path, split: str = "train", images_sub: str | None = None, mode: str = "RGB") -> dict:
    img_dir = root / (images_sub or split)
    img_dir.mkdir(parents=True, exist_ok=True)
    sizes = [(64, 48), (50, 40), (32, 32)]
    for i, (w, h) in enumerate(sizes):
        im = Image.new("RGB", (w, h), (i * 60, 100, 200))
        im.convert(mode).save(img_dir / f"im{i}.png")
    data = {
        "images": [
            {"id": 100 + i, "file_name": f"im{i}.png", "width": w, "height": h}
            for i, (w, h) in enumerate(sizes)
        ],
        "annotations": [
            {"id": 1, "image_id": 100, "category_id": 90, "bbox": [10, 5, 20, 10], "area": 200, "iscrowd": 0},
            {"id": 2, "image_id": 100, "category_id": 3, "bbox": [0, 0, 8, 8], "area": 64, "iscrowd": 0},
            {"id": 3, "image_id": 101, "category_id": 18, "bbox": [5, 5, 30, 30], "area": 900, "iscrowd": 1},
            {"id": 4, "image_id": 101, "category_id": 18, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0},
        ],
        "categories": CATEGORIES,
    }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    return data


def test_parse_and_remap(tmp_path):
    _write(tmp_path)
    ds = load_dataset(DatasetSpec(format="coco", path=str(tmp_path)), "train")
    assert ds.class_names == ["car", "dog", "toothbrush"]  # sorted by original id 3, 18, 90
    assert ds.num_classes == 4
    assert sorted(ds.coco.getCatIds()) == [1, 2, 3]
    image, target = ds[0]
    assert image.shape == (3, 48, 64) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert target["image_id"] == 100
    assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64
    assert target["boxes"].tolist() == [[10, 5, 30, 15], [0, 0, 8, 8]]  # xywh -> xyxy
    assert target["labels"].tolist() == [3, 1]  # toothbrush, car


def test_crowd_kept_for_eval_not_trained(tmp_path):
    _write(tmp_path)
    ds = load_dataset(DatasetSpec(format="coco", path=str(tmp_path)), "train")
    _, target = ds[1]
    assert target["labels"].tolist() == [2] and target["boxes"].tolist() == [[1, 2, 4, 6]]
    crowd = [a for a in ds.coco.dataset["annotations"] if a["iscrowd"]]
    assert len(crowd) == 1 and crowd[0]["category_id"] == 2
    summary = dataset_summary(ds)
    assert summary["boxes"] == 3 and summary["crowd_boxes"] == 1 and summary["images_without_boxes"] == 1


def test_empty_image_and_grayscale(tmp_path):
    _write(tmp_path, mode="L")
    ds = load_dataset(DatasetSpec(format="coco", path=str(tmp_path)), "train")
    image, target = ds[2]
    assert image.shape == (3, 32, 32)
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)


def test_coco_eval_perfect_detections(tmp_path):
    _write(tmp_path)
    ds = load_dataset(DatasetSpec(format="coco", path=str(tmp_path)), "train")
    results = []
    for _images, targets in build_eval_loader(ds, batch_size=2):
        for t in targets:
            for (x0, y0, x1, y1), label in zip(t["boxes"].tolist(), t["labels"].tolist()):
                results.append(
                    {
                        "image_id": t["image_id"],
                        "category_id": label,
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "score": 0.9,
                    }
                )
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(ds.coco, ds.coco.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def test_images_dir_with_split_placeholder_and_max_images(tmp_path):
    _write(tmp_path, split="val", images_sub="imgs_val")
    spec = DatasetSpec(format="coco", path=str(tmp_path), images_dir="imgs_{split}", max_images=2)
    ds = load_dataset(spec, "val")
    assert len(ds) == 2 and [ds.get_target(i)["image_id"] for i in range(2)] == [100, 101]
    assert {a["image_id"] for a in ds.coco.dataset["annotations"]} <= {100, 101}


def test_missing_image_raises(tmp_path):
    _write(tmp_path)
    (tmp_path / "train" / "im1.png").unlink()
    with pytest.raises(DatasetError, match=r"im1.png") as e:
        load_dataset(DatasetSpec(format="coco", path=str(tmp_path)), "train")
    assert e.value.param == "dataset.path"


def test_bad_json_and_missing_file(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "train").mkdir()
    (tmp_path / "annotations" / "instances_train.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_coco(tmp_path, "train")
    with pytest.raises(DatasetError, match="annotation file not found"):
        load_coco(tmp_path, "val")
    (tmp_path / "annotations" / "instances_train.json").write_text("[1, 2]")
    with pytest.raises(DatasetError, match="JSON object"):
        load_coco(tmp_path, "train")


def test_unknown_category_in_file(tmp_path):
    data = _write(tmp_path)
    data["annotations"][0]["category_id"] = 4
    (tmp_path / "annotations" / "instances_train.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="unknown category_id 4"):
        load_coco(tmp_path, "train")


def test_dataset_path_errors(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_dataset(DatasetSpec(format="coco", path=str(tmp_path / "nope")), "train")
    assert e.value.param == "dataset.path"
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(PathOutsideRootError):
        load_dataset(DatasetSpec(format="coco", path=str(tmp_path)), "train", data_roots=[root])
    with pytest.raises(DatasetError, match="invalid split"):
        load_dataset(DatasetSpec(format="coco", path=str(tmp_path)), "../train")


def test_unknown_format_lists_valid():
    spec = DatasetSpec.model_construct(format="tfrecord", path="x")
    with pytest.raises(DatasetError, match="valid: coco, voc, yolo"):
        load_dataset(spec, "train")


def test_in_memory_dict_remapped(tmp_path):
    _write(tmp_path)
    data = json.loads((tmp_path / "annotations" / "instances_train.json").read_text())
    ds = DetectionDataset(data, tmp_path / "train", name="mem")
    assert ds.class_names == ["car", "dog", "toothbrush"] and ds.get_target(0)["labels"].tolist() == [3, 1]


def test_cli_check(tmp_path, capsys):
    _write(tmp_path, "train")
    _write(tmp_path, "val")
    assert cli_main(["data", "check", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["format"] == "coco"
    assert out["splits"]["train"]["images"] == 3 and out["splits"]["val"]["boxes"] == 3
    assert cli_main(["data", "check", str(tmp_path / "missing")]) == 2
