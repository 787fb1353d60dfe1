"""Check one split held as a COCO dict (a VOC or YOLO split, a small COCO file): the trainer's
structural checks, the image files (all, a sample or none), and the counts of ``SplitStats``."""

from __future__ import annotations

import logging
from pathlib import Path

from mar_core.annotations.report import SplitReport, SplitStats
from mar_core.annotations.validate import check_image_files, check_not_empty, check_structure

log = logging.getLogger(__name__)

# check_images: True (every image file), False or 0 (none), or N (N image files, evenly spaced)
ImageCheck = bool | int


def sample(items: list, check_images: ImageCheck) -> list:
    """The items whose image files are read: all, none, or ``check_images`` evenly spaced."""
    if check_images is True:
        return items
    n = int(check_images)
    if n <= 0:
        return []
    if n >= len(items):
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def check_images_of(
    images: list[dict], images_dir: Path, stats: SplitStats, check_images: ImageCheck
) -> None:
    """Read the headers of a sample of ``images`` (see ``sample``): a missing or unreadable file
    raises ``DatasetError``; a missing size is filled in, a wrong one counted and replaced."""
    checked = sample(images, check_images)
    check_image_files(checked, images_dir, stats.validation)
    stats.images_checked = len(checked)


def check_split_dict(
    data: dict, images_dir: Path, split: str, source: str, check_images: ImageCheck = True
) -> SplitReport:
    """The report of a split held in memory (image sizes in ``data`` may be filled in)."""
    check_structure(data, source)
    check_not_empty(len(data["images"]), source)
    stats = SplitStats(split, data["categories"], source)
    stats.validation.num_images = len(data["images"])
    check_images_of(data["images"], Path(images_dir), stats, check_images)
    images = {img["id"]: img for img in data["images"]}
    stats.unsized = sum(not (img.get("width") and img.get("height")) for img in data["images"])
    for ann in data["annotations"]:
        img = images[ann["image_id"]]
        stats.add(ann, img.get("width"), img.get("height"), img["file_name"])
    return stats.report()
