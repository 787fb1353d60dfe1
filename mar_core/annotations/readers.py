"""The reader registry by format name, and ``read_split(spec, split)``: one split as a COCO dict.

Torch-free: the trainer (``mar_core.data.load_dataset``) and the API's checks read through it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from mar_core import names
from mar_core.annotations.coco import read_coco
from mar_core.annotations.containment import check_folders_inside, check_images_dir_inside
from mar_core.annotations.voc import read_voc
from mar_core.annotations.yolo import read_yolo
from mar_core.errors import DatasetError, SplitNotFoundError
from mar_core.paths import resolve_under
from mar_core.spec import DatasetSpec

log = logging.getLogger(__name__)

# format -> fn(root, split, images_dir | None, spec) -> (coco_dict, images_dir)
DatasetReader = Callable[[Path, str, "Path | None", DatasetSpec], tuple[dict, Path]]

DATASET_READERS: dict[str, DatasetReader] = {"coco": read_coco, "voc": read_voc, "yolo": read_yolo}
if set(DATASET_READERS) != set(names.DATASET_FORMATS):
    raise RuntimeError(f"dataset registry {sorted(DATASET_READERS)} != {names.DATASET_FORMATS=}")

_SPLIT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def split_param(spec: DatasetSpec, split: str) -> str:
    """The spec field that names ``split``."""
    if split == spec.val_split and split != spec.train_split:
        return "dataset.val_split"
    return "dataset.train_split"


def dataset_root(spec: DatasetSpec, data_roots: list[Path] | None) -> Path:
    """``spec.path`` resolved under ``data_roots``; ``DatasetError`` (``dataset.path``) when it
    is unset (a ``dataset.id`` the API has not filled in) or not a folder."""
    if spec.path is None:
        raise DatasetError(
            "dataset.path is not set (dataset.id is resolved by the API)", param="dataset.path"
        )
    root = resolve_under(spec.path, data_roots, "dataset.path")
    if not root.is_dir():
        raise DatasetError(
            f"dataset.path: {spec.path!r} does not exist (resolved to {root})", param="dataset.path"
        )
    return root


def check_split_name(spec: DatasetSpec, split: str) -> None:
    if not _SPLIT_RE.match(split):
        raise DatasetError(f"invalid split name {split!r}", param=split_param(spec, split))


def spec_images_dir(spec: DatasetSpec, root: Path, split: str, data_roots: list[Path] | None) -> Path | None:
    """``spec.images_dir`` (relative to the root, ``{split}`` replaced) resolved, or None."""
    if not spec.images_dir:
        return None
    rel = spec.images_dir.replace("{split}", split)
    return resolve_under(root / rel, data_roots, "dataset.images_dir")


def name_param(e: DatasetError, spec: DatasetSpec, split: str) -> DatasetError:
    """Fill in ``e.param`` when the raiser left it unset: the split's field for a missing split,
    else ``dataset.path``."""
    if e.param is None:
        e.param = split_param(spec, split) if isinstance(e, SplitNotFoundError) else "dataset.path"
    return e


def truncate(data: dict, max_images: int) -> dict:
    """Keep the first ``max_images`` images (file order) and their annotations, in place."""
    if len(data["images"]) > max_images:
        data["images"] = data["images"][:max_images]
        keep = {img["id"] for img in data["images"]}
        data["annotations"] = [a for a in data["annotations"] if a.get("image_id") in keep]
    return data


def read_split(
    spec: DatasetSpec, split: str, data_roots: list[Path] | None = None
) -> tuple[dict, Path, Path]:
    """``(coco_dict, images_dir, root)`` of split ``split`` of the dataset ``spec`` describes,
    truncated to ``spec.max_images``; not yet box-validated. With ``data_roots``, every file it
    may read (links followed) lies inside them (``annotations.containment``).

    Raises ``DatasetError`` whose ``param`` names the spec field at fault.
    """
    reader = DATASET_READERS.get(spec.format)
    if reader is None:
        valid = ", ".join(names.DATASET_FORMATS)
        raise DatasetError(f"unknown dataset format {spec.format!r}; valid: {valid}", param="dataset.format")
    check_split_name(spec, split)
    root = dataset_root(spec, data_roots)
    images_dir = spec_images_dir(spec, root, split, data_roots)
    check_folders_inside(root, images_dir, data_roots)
    try:
        data, images_dir = reader(root, split, images_dir, spec)
    except DatasetError as e:
        raise name_param(e, spec, split) from None
    check_images_dir_inside(root, images_dir, data_roots)  # the folder the reader found
    if spec.max_images is not None:
        truncate(data, spec.max_images)
    return data, images_dir, root
