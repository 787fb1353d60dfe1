"""A dataset cannot read outside the data roots through a symbolic link in any position (split
folder, annotation file, label folder, image, a link inside a linked folder)  or through an image
``file_name`` that is absolute or climbs with ``..``: both the API's check (``inspect_dataset``)
and the trainer's reader (``read_split``) refuse it, naming the entry, never an absolute path."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from mar_core.annotations import inspect_dataset, read_split
from mar_core.errors import DatasetError, PathOutsideRootError
from mar_core.spec import DatasetSpec
from tests.dataset_writers import write_coco, write_voc, write_yolo


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(data root, a second data root, a folder outside both)."""
    paths = tmp_path / "data", tmp_path / "data2", tmp_path / "outside"
    for p in paths:
        p.mkdir()
    return paths


def _move_out(path: Path, outside: Path) -> None:
    """Move ``path`` to ``outside`` and leave a symbolic link to it in its place."""
    target = outside / path.name
    shutil.move(path, target)
    path.symlink_to(target, target_is_directory=target.is_dir())


def _linked_split_folder(ds: Path, out: Path) -> str:
    _move_out(ds / "train", out)
    return "train"


def _linked_annotation_file(ds: Path, out: Path) -> str:
    _move_out(ds / "annotations" / "instances_train.json", out)
    return "annotations/instances_train.json"


def _linked_image(ds: Path, out: Path) -> str:
    image = sorted((ds / "train").iterdir())[0]
    _move_out(image, out)
    return f"train/{image.name}"


def _link_in_linked_folder(ds: Path, out: Path) -> str:
    # train/ -> data2/train (allowed), whose first image -> outside (not allowed)
    data2 = ds.parent.parent / "data2"
    _move_out(ds / "train", data2)
    image = sorted((data2 / "train").iterdir())[0]
    _move_out(image, out)
    return f"train/{image.name}"


COCO_CASES: dict[str, Callable[[Path, Path], str]] = {
    "split folder": _linked_split_folder,
    "annotation file": _linked_annotation_file,
    "image": _linked_image,
    "link inside a linked folder": _link_in_linked_folder,
}


def _both_refuse(spec: DatasetSpec, allowed: list[Path], shown: str, outside: Path) -> None:
    for check in (lambda: inspect_dataset(spec, allowed), lambda: read_split(spec, "train", allowed)):
        with pytest.raises(PathOutsideRootError) as e:
            check()
        assert e.value.param in ("dataset.path", "dataset.images_dir")
        assert shown in e.value.message
        assert str(outside) not in e.value.message


@pytest.mark.parametrize("case", list(COCO_CASES))
def test_a_link_out_of_the_roots_is_refused_in_every_position(roots, case: str) -> None:
    data, data2, outside = roots
    ds = write_coco(data / "ds")
    spec = DatasetSpec(format="coco", path="ds")
    inspect_dataset(spec, [data, data2])  # valid before the link is made
    shown = COCO_CASES[case](ds, outside)
    _both_refuse(spec, [data, data2], shown, outside)


def test_links_that_stay_inside_the_roots_are_followed(roots) -> None:
    data, data2, _ = roots
    ds = write_coco(data / "ds")
    _move_out(ds / "train", data2)  # a split folder in another allowed root
    _move_out(ds / "annotations" / "instances_val.json", data)  # a file elsewhere in the same root
    spec = DatasetSpec(format="coco", path="ds")
    report = inspect_dataset(spec, [data, data2])
    assert set(report.splits) == {"train", "val"}
    coco, _, _ = read_split(spec, "train", [data, data2])
    assert len(coco["images"]) == 3


@pytest.mark.parametrize("name", ["../../../outside/stolen.png", "/outside/stolen.png"])
def test_an_image_name_leaving_its_folder_is_refused(roots, name: str) -> None:
    data, _, _ = roots
    ds = write_coco(data / "ds")
    ann = ds / "annotations" / "instances_train.json"
    coco = json.loads(ann.read_text())
    coco["images"][0]["file_name"] = name
    ann.write_text(json.dumps(coco))
    spec = DatasetSpec(format="coco", path="ds")
    for check in (lambda: inspect_dataset(spec, [data]), lambda: read_split(spec, "train", [data])):
        with pytest.raises(DatasetError, match="file_name"):
            check()


@pytest.mark.parametrize(
    ("fmt", "write", "linked"),
    [("voc", write_voc, "Annotations"), ("yolo", write_yolo, "labels"), ("yolo", write_yolo, "data.yaml")],
)
def test_voc_and_yolo_folders_linked_out_are_refused(roots, fmt: str, write, linked: str) -> None:
    data, _, outside = roots
    ds = write(data / "ds")
    _move_out(ds / linked, outside)
    _both_refuse(DatasetSpec(format=fmt, path="ds"), [data], linked, outside)


def test_without_roots_the_local_cli_follows_any_link(roots) -> None:
    data, _, outside = roots
    ds = write_coco(data / "ds")
    _move_out(ds / "train", outside)
    coco, _, _ = read_split(DatasetSpec(format="coco", path=str(ds)), "train", None)
    assert len(coco["images"]) == 3
