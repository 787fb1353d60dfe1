"""Synthetic shapes: determinism, classes, size buckets, loading, CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mar_cli.main import main as cli_main
from mar_core.data import dataset_summary, generate_synthetic, load_dataset
from mar_core.errors import DatasetError
from mar_core.spec import DatasetSpec
from mar_core.synth import SHAPES, _shape_mask, _tight_box


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth_big")
    return out, generate_synthetic(out, seed=3, num_train=300, num_val=20)


def test_same_seed_byte_identical(tmp_path):
    a = _files(Path(generate_synthetic(tmp_path / "a", seed=11, num_train=12, num_val=4)["out_dir"]))
    b = _files(Path(generate_synthetic(tmp_path / "b", seed=11, num_train=12, num_val=4)["out_dir"]))
    c = _files(Path(generate_synthetic(tmp_path / "c", seed=12, num_train=12, num_val=4)["out_dir"]))
    assert len(a) == 12 + 4 + 2 and a == b
    assert a["train/000000.png"] != c["train/000000.png"]
    # image i of a split does not depend on how many images are generated
    d = _files(Path(generate_synthetic(tmp_path / "d", seed=11, num_train=3, num_val=1)["out_dir"]))
    assert d["train/000002.png"] == a["train/000002.png"]


def test_classes_and_size_buckets(big):
    out, summary = big
    data = json.loads((out / "annotations" / "instances_train.json").read_text())
    names = [c["name"] for c in data["categories"]]
    assert len(names) >= 5 and len(set(names)) == len(names) and names == list(SHAPES[: len(names)])
    per_class = Counter(a["category_id"] for a in data["annotations"])
    assert set(per_class) == set(range(1, len(names) + 1))
    areas = np.array([a["bbox"][2] * a["bbox"][3] for a in data["annotations"]])
    small, large = (areas < 32**2).sum(), (areas >= 96**2).sum()
    medium = len(areas) - small - large
    assert small > 0 and medium > 0 and large > 0
    assert large < small and large < medium  # large objects are rare at 128 px
    assert summary["splits"]["train"] == {
        "images": 300,
        "boxes": len(areas),
        "small": small,
        "medium": medium,
        "large": large,
    }


def test_boxes_inside_images_and_images_textured(big):
    out, _ = big
    data = json.loads((out / "annotations" / "instances_val.json").read_text())
    for a in data["annotations"]:
        x, y, w, h = a["bbox"]
        assert x >= 0 and y >= 0 and w >= 10 - 2 and h >= 10 - 2 and x + w <= 128 and y + h <= 128
    pixels = np.asarray(Image.open(out / "val" / "000000.png"))
    assert pixels.shape == (128, 128, 3) and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500


def test_loads_through_registry_and_coco(big):
    out, _ = big
    ds = load_dataset(DatasetSpec(format="coco", path=str(out)), "train")
    assert len(ds) == 300 and ds.validation.ok and ds.num_classes == 7
    s = dataset_summary(ds)
    assert s["images_without_boxes"] == 0 and s["sizes"]["large"] > 0
    image, target = ds[5]
    assert image.shape == (3, 128, 128)
    assert len(target["boxes"]) == len(ds.coco.getAnnIds(imgIds=[target["image_id"]]))


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_masks_fill_their_box(shape):
    mask = _shape_mask(shape, 10, 20, 30, 24, (64, 64))
    x, y, w, h = _tight_box(mask)
    assert 10 <= x and x + w <= 40 and 20 <= y and y + h <= 44
    assert w >= 0.9 * 30 and h >= 0.85 * 24  # a star's points stop short of the box edges
    assert 0.3 < mask.sum() / (w * h) <= 1.0


def test_shapes_differ():
    masks = [_shape_mask(s, 0, 0, 31, 31, (31, 31)) for s in SHAPES]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            iou = (masks[i] & masks[j]).sum() / (masks[i] | masks[j]).sum()
            assert iou < 0.85, (SHAPES[i], SHAPES[j], iou)


def test_image_size_256_and_args(tmp_path):
    s = generate_synthetic(tmp_path / "big", seed=0, num_train=4, num_val=1, image_size=256, num_classes=5)
    assert Image.open(tmp_path / "big" / "train" / "000000.png").size == (256, 256)
    assert s["class_names"] == list(SHAPES[:5])
    with pytest.raises(ValueError, match="num_classes"):
        generate_synthetic(tmp_path / "x", num_classes=len(SHAPES) + 1)
    with pytest.raises(DatasetError, match="already holds a dataset"):
        generate_synthetic(tmp_path / "big", seed=0, num_train=2, num_val=1)
    generate_synthetic(tmp_path / "big", seed=0, num_train=2, num_val=1, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "big" / "train").iterdir()) == ["000000.png", "000001.png"]


def test_cli_synth(tmp_path, capsys):
    args = [
        "data",
        "synth",
        "--out",
        str(tmp_path / "s"),
        "--seed",
        "2",
        "--num-train",
        "3",
        "--num-val",
        "2",
    ]
    assert cli_main(args) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["val"]["images"] == 2
    assert cli_main(args) == 2  # exists, no --overwrite
    assert cli_main([*args, "--overwrite"]) == 0


def test_ensure_synthetic_generates_once_per_parameter_set(tmp_path):
    from mar_core.synth_once import ensure_synthetic

    params = {"seed": 1, "num_train": 3, "num_val": 2, "image_size": 64}
    out = ensure_synthetic(tmp_path / "set", params)
    ann = out / "annotations" / "instances_train.json"
    first = ann.stat().st_mtime_ns
    assert ensure_synthetic(out, dict(params)) == out and ann.stat().st_mtime_ns == first  # reused
    ensure_synthetic(out, {**params, "num_train": 4})  # other parameters: written again
    assert len(json.loads(ann.read_text())["images"]) == 4
