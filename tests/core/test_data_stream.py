"""The streaming COCO check (``ijson``) reports what the in-memory one does."""

from __future__ import annotations

import json

import pytest

from mar_core.annotations.coco_stream import check_coco_file
from mar_core.annotations.split_check import check_split_dict, sample
from tests.dataset_writers import write_coco


def _awkward(root, order):
    """A COCO split with crowd, clipped and dropped boxes, a missing size, a wrong
    size, categories out of order, float and int coordinates; top-level keys in ``order``."""
    write_coco(root, splits=("train",))
    path = root / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    data["images"][0].pop("width")  # read from the file
    data["images"][1]["height"] = 400  # wrong: the file says 40
    data["annotations"] += [
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [50.5, 40, 30, 20], "iscrowd": 1},
        {"id": 11, "image_id": 2, "category_id": 2, "bbox": [-3, 2, 10, 10], "area": 500},
        {"id": 12, "image_id": 2, "category_id": 3, "bbox": [10, 10, 0, 5]},
        {"id": 13, "image_id": 3, "category_id": 3, "bbox": [1, 1, 2000, 2000.5], "area": 40},
    ]
    data = {
        "annotations": data["annotations"],
        "images": data["images"],
        "categories": data["categories"][::-1],
    }
    path.write_text(json.dumps(data))
    return path


ORDERS = [
    ("images", "annotations", "categories"),  # COCO's own
    ("categories", "images", "annotations"),  # Roboflow's, CVAT's
    ("annotations", "images", "categories"),
]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("check_images", [True, 0, 2])
def test_stream_equals_json_load(tmp_path, check_images, order):
    path = _awkward(tmp_path, order)
    streamed = check_coco_file(path, tmp_path / "train", "train", "a.json", check_images)
    loaded = check_split_dict(
        json.loads(path.read_text()), tmp_path / "train", "train", "a.json", check_images
    )
    assert streamed.to_dict() == loaded.to_dict()
    assert streamed.warnings() == loaded.warnings()
    assert streamed.validation.dropped == loaded.validation.dropped
    assert streamed.validation.clipped == loaded.validation.clipped
    assert streamed.crowd == 1 and streamed.validation.num_dropped == 1


def test_sample_is_evenly_spaced():
    assert sample(list(range(10)), 3) == [0, 3, 6]
    assert sample(list(range(3)), 5) == [0, 1, 2]
    assert sample(list(range(3)), True) == [0, 1, 2] and sample(list(range(3)), False) == []
