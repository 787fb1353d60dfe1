"""Box validation: clipping, dropping, counts, and the load-time errors."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
from PIL import Image

from mar_core.annotations.validate import ValidationReport, fix_boxes, validate_dataset
from mar_core.errors import DatasetError


def _image(path: Path, size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 150)).save(path)


def _data(boxes: list[list[float]], size: tuple[int, int] = (40, 30)) -> dict:
    return {
        "images": [{"id": 7, "file_name": "a.png", "width": size[0], "height": size[1]}],
        "annotations": [
            {"id": i + 1, "image_id": 7, "category_id": 1, "bbox": b} for i, b in enumerate(boxes)
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }


def test_clip_and_drop_counts():
    data = _data(
        [
            [5, 5, 10, 10],  # fine
            [-4, 2, 10, 10],  # clipped at the left
            [30, 20, 20, 20],  # clipped right and bottom
            [10, 10, 0, 5],  # zero width: dropped
            [10, 10, 5, -3],  # negative height: dropped
            [50, 5, 10, 10],  # wholly outside: nothing left after clipping, dropped
            [1, 1, math.nan, 4],  # non-finite: dropped
        ]
    )
    report = ValidationReport("t")
    fix_boxes(data, report)
    assert [a["id"] for a in data["annotations"]] == [1, 2, 3]
    assert [a["bbox"] for a in data["annotations"]] == [[5, 5, 10, 10], [0, 2, 6, 10], [30, 20, 10, 10]]
    assert report.num_clipped == 2 and [i.ann_id for i in report.clipped] == [2, 3]
    assert report.num_dropped == 4 and [i.ann_id for i in report.dropped] == [4, 5, 6, 7]
    assert {i.file_name for i in report.dropped} == {"a.png"}
    assert report.num_boxes == 3
    assert [a["area"] for a in data["annotations"]] == [100, 60, 100]


def test_area_kept_unless_clipped_and_crowd_flag():
    data = _data([[0, 0, 10, 10], [35, 0, 10, 10]])
    data["annotations"][0].update(area=55.0, iscrowd=True)
    data["annotations"][1].update(area=90.0)
    report = ValidationReport("t")
    fix_boxes(data, report)
    a, b = data["annotations"]
    assert a["area"] == 55.0 and a["iscrowd"] == 1 and b["iscrowd"] == 0
    assert b["area"] == 50.0  # capped at the clipped box (5 x 10)
    assert report.num_crowd == 1


def test_validate_dataset_warns_once(tmp_path, caplog):
    _image(tmp_path / "a.png")
    data = _data([[5, 5, 10, 10], [-1, 0, 5, 5], [3, 3, 0, 0], [4, 4, -1, 2]])
    with caplog.at_level(logging.WARNING, logger="mar_core.data"):
        report = validate_dataset(data, tmp_path, "demo train")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    msg = warnings[0].getMessage()
    assert msg.startswith("demo train: dropped 2 degenerate boxes (a.png)") and "clipped 1" in msg
    assert (report.num_dropped, report.num_clipped, report.num_boxes) == (2, 1, 2)


def test_clean_dataset_does_not_warn(tmp_path, caplog):
    _image(tmp_path / "a.png")
    with caplog.at_level(logging.WARNING, logger="mar_core.data"):
        report = validate_dataset(_data([[5, 5, 10, 10]]), tmp_path, "clean")
    assert report.ok and not caplog.records


def test_size_mismatch_trusts_the_image(tmp_path, caplog):
    _image(tmp_path / "a.png", size=(20, 30))  # recorded 40 x 30
    data = _data([[15, 5, 10, 10]])
    with caplog.at_level(logging.WARNING, logger="mar_core.data"):
        report = validate_dataset(data, tmp_path, "sz")
    assert data["images"][0]["width"] == 20 and report.size_mismatch == ["a.png"]
    assert data["annotations"][0]["bbox"] == [15, 5, 5, 10]  # clipped to the real width
    assert "image size differs" in caplog.records[0].getMessage()


def test_missing_size_is_read_from_file(tmp_path):
    _image(tmp_path / "a.png", size=(33, 22))
    data = _data([[1, 1, 5, 5]])
    del data["images"][0]["width"], data["images"][0]["height"]
    report = validate_dataset(data, tmp_path, "ns")
    assert (data["images"][0]["width"], data["images"][0]["height"]) == (33, 22)
    assert report.ok


def test_annotation_ids_renumbered_when_zero_or_duplicate(tmp_path):
    _image(tmp_path / "a.png")
    data = _data([[1, 1, 5, 5], [2, 2, 5, 5]])
    data["annotations"][0]["id"] = 0
    validate_dataset(data, tmp_path, "ids")
    assert [a["id"] for a in data["annotations"]] == [1, 2]


@pytest.mark.parametrize("key", ["images", "annotations", "categories"])
def test_missing_key(tmp_path, key):
    data = _data([[1, 1, 5, 5]])
    del data[key]
    with pytest.raises(DatasetError, match=f"missing key '{key}'"):
        validate_dataset(data, tmp_path, "mk")


def test_unknown_category_and_image(tmp_path):
    _image(tmp_path / "a.png")
    data = _data([[1, 1, 5, 5]])
    data["annotations"][0]["category_id"] = 9
    with pytest.raises(DatasetError, match="unknown category_id 9"):
        validate_dataset(data, tmp_path, "uc")
    data = _data([[1, 1, 5, 5]])
    data["annotations"][0]["image_id"] = 3
    with pytest.raises(DatasetError, match="unknown image_id 3"):
        validate_dataset(data, tmp_path, "ui")


def test_missing_image_file_named(tmp_path):
    with pytest.raises(DatasetError, match=r"image file not found: .*a.png"):
        validate_dataset(_data([[1, 1, 5, 5]]), tmp_path, "mi")


def test_unreadable_image_file(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"cannot read image file .*a.png"):
        validate_dataset(_data([[1, 1, 5, 5]]), tmp_path, "ur")


@pytest.mark.parametrize("name", ["../a.png", "/etc/a.png", ""])
def test_file_name_must_stay_inside(tmp_path, name):
    data = _data([])
    data["images"][0]["file_name"] = name
    with pytest.raises(DatasetError, match="relative path"):
        validate_dataset(data, tmp_path, "fn")


def test_bad_bbox_shape(tmp_path):
    data = _data([[1, 1, 5]])
    with pytest.raises(DatasetError, match="bbox of 4 numbers"):
        validate_dataset(data, tmp_path, "bb")
