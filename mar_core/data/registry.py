"""Dataset registry by format name, and the one entry point ``load_dataset(spec, split)``."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mar_core import names
from mar_core.data.coco import load_coco
from mar_core.data.dataset import DetectionDataset
from mar_core.data.voc import load_voc
from mar_core.errors import DatasetError
from mar_core.paths import resolve_under
from mar_core.spec import DatasetSpec

log = logging.getLogger(__name__)

# format -> fn(root, split, images_dir | None, spec) -> (coco_dict, images_dir)
DatasetReader = Callable[[Path, str, "Path | None", DatasetSpec], tuple[dict, Path]]

DATASET_READERS: dict[str, DatasetReader] = {
    "coco": lambda root, split, images_dir, spec: load_coco(root, split, images_dir),
    "voc": lambda root, split, images_dir, spec: load_voc(root, split, images_dir, spec.class_names),
}
if set(DATASET_READERS) != set(names.DATASET_FORMATS):
    raise RuntimeError(f"dataset registry {sorted(DATASET_READERS)} != {names.DATASET_FORMATS=}")

# COCO's size buckets, absolute pixel area
SMALL_AREA, LARGE_AREA = 32**2, 96**2

_SPLIT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def _split_param(spec: DatasetSpec, split: str) -> str:
    if split == spec.val_split and split != spec.train_split:
        return "dataset.val_split"
    return "dataset.train_split"


def truncate(data: dict, max_images: int) -> dict:
    """Keep the first ``max_images`` images (file order) and their annotations, in place."""
    if len(data["images"]) > max_images:
        data["images"] = data["images"][:max_images]
        keep = {img["id"] for img in data["images"]}
        data["annotations"] = [a for a in data["annotations"] if a.get("image_id") in keep]
    return data


def load_dataset(spec: DatasetSpec, split: str, data_roots: list[Path] | None = None) -> DetectionDataset:
    """Load and validate split ``split`` of the dataset ``spec`` describes.

    ``spec.path`` (and ``spec.images_dir``, relative to it; ``{split}`` in it is replaced) must
    lie under ``data_roots`` when given. Raises ``DatasetError`` (``param`` names the spec field)
    for an unknown format, a missing path, or any fault ``DetectionDataset`` finds.
    """
    reader = DATASET_READERS.get(spec.format)
    if reader is None:
        valid = ", ".join(names.DATASET_FORMATS)
        raise DatasetError(f"unknown dataset format {spec.format!r}; valid: {valid}", param="dataset.format")
    if not _SPLIT_RE.match(split):
        raise DatasetError(f"invalid split name {split!r}", param=_split_param(spec, split))
    root = resolve_under(spec.path, data_roots, "dataset.path")
    if not root.is_dir():
        raise DatasetError(
            f"dataset.path: {spec.path!r} does not exist (resolved to {root})", param="dataset.path"
        )
    images_dir = None
    if spec.images_dir:
        rel = spec.images_dir.replace("{split}", split)
        images_dir = resolve_under(root / rel, data_roots, "dataset.images_dir")
    try:
        data, images_dir = reader(root, split, images_dir, spec)
    except DatasetError as e:
        if e.param is None:
            e.param = "dataset.path"
        raise
    if spec.max_images is not None:
        truncate(data, spec.max_images)
    try:
        return DetectionDataset(data, images_dir, name=f"{root.name} {split}")
    except DatasetError as e:
        if e.param is None:
            e.param = "dataset.path"
        raise


def dataset_summary(ds: DetectionDataset) -> dict[str, Any]:
    """Counts for logs: images, boxes (crowd apart), per class, per COCO size bucket (by the
    ``area`` COCOeval uses), and the validation counts."""
    anns = ds.coco.dataset["annotations"]
    train = [a for a in anns if not a["iscrowd"]]
    per_class = Counter(a["category_id"] for a in train)
    sizes = Counter(
        "small" if a["area"] < SMALL_AREA else "medium" if a["area"] < LARGE_AREA else "large" for a in train
    )
    with_boxes = {a["image_id"] for a in train}
    return {
        "name": ds.name,
        "images": len(ds),
        "images_without_boxes": len(ds) - len(with_boxes),
        "boxes": len(train),
        "crowd_boxes": len(anns) - len(train),
        "classes": len(ds.class_names),
        "class_names": list(ds.class_names),
        "boxes_per_class": {n: per_class.get(k, 0) for k, n in enumerate(ds.class_names, start=1)},
        "sizes": {k: sizes.get(k, 0) for k in ("small", "medium", "large")},
        "validation": ds.validation.to_dict(),
    }
