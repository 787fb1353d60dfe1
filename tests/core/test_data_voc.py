"""Pascal VOC reading: the real BCCD set and a tiny hand-made one."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from PIL import Image

from mar_core.data import dataset_summary, load_dataset, load_voc, voc_class_names
from mar_core.errors import DatasetError
from mar_core.spec import DatasetSpec

BCCD = Path("/work/shared/datasets/BCCD/BCCD")
needs_bccd = pytest.mark.skipif(not (BCCD / "Annotations").is_dir(), reason="BCCD dataset not present")


def _bccd(split: str):
    return load_dataset(DatasetSpec(format="voc", path=str(BCCD)), split)


@needs_bccd
@pytest.mark.parametrize("split,size", [("train", 205), ("val", 87), ("test", 72)])
def test_bccd_splits(split, size):
    ds = _bccd(split)
    assert len(ds) == size
    assert ds.class_names == ["Platelets", "RBC", "WBC"] and ds.num_classes == 4
    labels = set()
    for i in range(len(ds)):
        t = ds.get_target(i)
        labels |= set(t["labels"].tolist())
        b = t["boxes"]
        assert ((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])).all()
        info = ds.image_info(i)
        assert (b[:, 2] <= info["width"]).all() and (b[:, 3] <= info["height"]).all() and (b >= 0).all()
    assert labels == {1, 2, 3}


@needs_bccd
@pytest.mark.parametrize(
    "split,bad_file", [("train", "BloodImage_00343.jpg"), ("val", "BloodImage_00338.jpg")]
)
def test_bccd_degenerate_boxes_dropped_with_warning(split, bad_file, caplog):
    with caplog.at_level(logging.WARNING, logger="mar_core.data"):
        ds = _bccd(split)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "dropped 1 degenerate box" in warnings[0] and bad_file in warnings[0]
    assert [d.file_name for d in ds.validation.dropped] == [bad_file]
    assert ds.validation.num_clipped == 0
    # the dropped box is in neither the training targets nor the COCO ground truth
    bad_id = next(img["id"] for img in ds.coco.dataset["images"] if img["file_name"] == bad_file)
    kept = [a for a in ds.coco.dataset["annotations"] if a["image_id"] == bad_id]
    assert all(a["bbox"][2] > 0 and a["bbox"][3] > 0 for a in kept)
    assert dataset_summary(ds)["validation"]["dropped"] == 1


@needs_bccd
def test_bccd_test_split_is_clean(caplog):
    with caplog.at_level(logging.WARNING, logger="mar_core.data"):
        ds = _bccd("test")
    assert ds.validation.ok and not caplog.records


Obj = tuple[str, tuple[int, int, int, int], int]  # name, VOC corners, difficult


def _xml(name: str, size: tuple[int, int] | None, objects: list[Obj]) -> str:
    size_xml = f"<size><width>{size[0]}</width><height>{size[1]}</height></size>" if size else ""
    objs = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b, d in objects
    )
    return f"<annotation><filename>{name}.jpg</filename>{size_xml}{objs}</annotation>"


def _tiny_voc(root: Path, real_size_b: tuple[int, int] = (60, 40)) -> Path:
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    Image.new("RGB", (60, 40)).save(root / "JPEGImages" / "a.jpg")
    Image.new("RGB", real_size_b).save(root / "JPEGImages" / "b.jpg")
    Image.new("RGB", (60, 40)).save(root / "JPEGImages" / "c.jpg")
    (root / "Annotations" / "a.xml").write_text(
        _xml(
            "a",
            (60, 40),
            [
                ("zebra", (1, 1, 10, 20), 0),  # 1-based corners -> [0, 0, 10, 20]
                ("cat", (30, 5, 60, 40), 1),  # difficult -> crowd
                ("cat", (5, 5, 5, 9), 0),  # zero extent -> dropped
            ],
        )
    )
    (root / "Annotations" / "b.xml").write_text(_xml("b", (60, 40), [("cat", (11, 21, 20, 30), 0)]))
    (root / "Annotations" / "c.xml").write_text(_xml("c", None, [("aardvark", (2, 2, 6, 6), 0)]))
    (root / "ImageSets/Main/train.txt").write_text("a\nb\n")
    (root / "ImageSets/Main/val.txt").write_text("b\n\n")
    return root


def test_one_based_conversion_difficult_and_degenerate(tmp_path, caplog):
    root = _tiny_voc(tmp_path)
    with caplog.at_level(logging.WARNING, logger="mar_core.data"):
        ds = load_dataset(DatasetSpec(format="voc", path=str(root)), "train")
    assert ds.class_names == ["aardvark", "cat", "zebra"]  # over all files, c.xml is in no split
    t = ds.get_target(0)
    assert t["boxes"].tolist() == [[0, 0, 10, 20]] and t["labels"].tolist() == [3]
    assert ds.get_target(1)["boxes"].tolist() == [[10, 20, 20, 30]]
    crowd = [a for a in ds.coco.dataset["annotations"] if a["iscrowd"]]
    assert len(crowd) == 1 and crowd[0]["bbox"] == [29, 4, 31, 36] and crowd[0]["category_id"] == 2
    assert ds.validation.num_dropped == 1 and ds.validation.dropped[0].file_name == "a.jpg"
    assert len(caplog.records) == 1 and "dropped 1 degenerate box (a.jpg)" in caplog.records[0].getMessage()


def test_train_val_agree_on_classes(tmp_path):
    root = _tiny_voc(tmp_path)
    spec = DatasetSpec(format="voc", path=str(root))
    assert load_dataset(spec, "val").class_names == load_dataset(spec, "train").class_names
    assert voc_class_names(root) == ["aardvark", "cat", "zebra"]


def test_explicit_class_names_fix_the_order(tmp_path):
    root = _tiny_voc(tmp_path)
    ds = load_dataset(DatasetSpec(format="voc", path=str(root), class_names=["zebra", "cat"]), "train")
    assert ds.get_target(0)["labels"].tolist() == [1]
    with pytest.raises(DatasetError, match="'zebra' is not one of"):
        load_voc(root, "train", class_names=["cat"])


def test_size_mismatch_trusts_image(tmp_path, caplog):
    root = _tiny_voc(tmp_path, real_size_b=(30, 25))
    with caplog.at_level(logging.WARNING, logger="mar_core.data"):
        ds = load_dataset(DatasetSpec(format="voc", path=str(root)), "val")
    assert (ds.image_info(0)["width"], ds.image_info(0)["height"]) == (30, 25)
    assert ds.validation.size_mismatch == ["b.jpg"] and ds.validation.num_clipped == 1
    assert ds.get_target(0)["boxes"].tolist() == [[10, 20, 20, 25]]
    assert ds[0][0].shape == (3, 25, 30)
    assert len(caplog.records) == 1


def test_missing_split_image_and_xml(tmp_path):
    root = _tiny_voc(tmp_path)
    with pytest.raises(DatasetError, match=r"available splits: train, val"):
        load_voc(root, "test")
    (root / "ImageSets/Main/bad.txt").write_text("a\nzzz\n")
    with pytest.raises(DatasetError, match=r"zzz.xml"):
        load_voc(root, "bad")
    (root / "JPEGImages" / "b.jpg").unlink()
    with pytest.raises(DatasetError, match=r"b.jpg"):
        load_dataset(DatasetSpec(format="voc", path=str(root)), "val")


def test_broken_xml(tmp_path):
    root = _tiny_voc(tmp_path)
    (root / "Annotations" / "b.xml").write_text("<annotation><object>")
    with pytest.raises(DatasetError, match=r"b.xml"):
        load_voc(root, "val")
