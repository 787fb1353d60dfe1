"""The trainer's entry point ``load_dataset(spec, split)``, and ``dataset_summary`` for logs.

Reading goes through the torch-free registry ``mar_core.annotations.readers``.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from mar_core.annotations.readers import name_param, read_split
from mar_core.annotations.validate import size_bucket
from mar_core.data.dataset import DetectionDataset
from mar_core.errors import DatasetError
from mar_core.spec import DatasetSpec

log = logging.getLogger(__name__)


def load_dataset(spec: DatasetSpec, split: str, data_roots: list[Path] | None = None) -> DetectionDataset:
    """Load and validate split ``split`` of the dataset ``spec`` describes.

    ``spec.path`` (and ``spec.images_dir``, relative to it; ``{split}`` in it is replaced) must
    lie under ``data_roots`` when given. Raises ``DatasetError`` (``param`` names the spec field)
    for an unknown format, a missing path or split, or any fault ``DetectionDataset`` finds.
    """
    data, images_dir, root = read_split(spec, split, data_roots)
    try:
        return DetectionDataset(data, images_dir, name=f"{root.name} {split}", on_bad_image=spec.on_bad_image)
    except DatasetError as e:
        raise name_param(e, spec, split) from None


def dataset_summary(ds: DetectionDataset) -> dict[str, Any]:
    """Counts for logs: images, boxes (crowd apart), per class, per COCO size bucket (by the
    ``area`` COCOeval uses), and the validation counts."""
    anns = ds.coco.dataset["annotations"]
    train = [a for a in anns if not a["iscrowd"]]
    per_class = Counter(a["category_id"] for a in train)
    sizes = Counter(size_bucket(a["area"]) for a in train)
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
