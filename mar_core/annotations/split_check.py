"""Check one split held as a COCO dict (a VOC or YOLO split, a small COCO file): the trainer's
structural checks, the image files (all, a sample or none, each decoded in full), and the counts
of ``SplitStats``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mar_core.annotations.image_scan import Progress
from mar_core.annotations.report import SplitReport, SplitStats
from mar_core.annotations.validate import (
    check_image_files,
    check_not_empty,
    check_structure,
    drop_images,
    note_reader_findings,
)

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
    images: list[dict],
    images_dir: Path,
    stats: SplitStats,
    check_images: ImageCheck,
    on_bad_image: str = "refuse",
    progress: Progress | None = None,
) -> set[Any]:
    """Decode a sample of ``images`` (see ``sample``) in full: a missing file raises
    ``DatasetError``, an undecodable one ``BadImageError`` unless ``on_bad_image`` is ``"skip"``
    (its id returned, the file counted); a missing size is filled in, a wrong one counted and
    replaced; repaired and duplicate files are counted."""
    checked = sample(images, check_images)
    skipped = check_image_files(
        checked, images_dir, stats.validation, decode=True, on_bad_image=on_bad_image, progress=progress
    )
    stats.images_checked = len(checked) - len(skipped)
    return skipped


def check_split_dict(
    data: dict,
    images_dir: Path,
    split: str,
    source: str,
    check_images: ImageCheck = True,
    on_bad_image: str = "refuse",
    progress: Progress | None = None,
) -> SplitReport:
    """The report of a split held in memory (image sizes in ``data`` may be filled in, images
    left out under ``on_bad_image="skip"`` removed)."""
    check_structure(data, source)
    check_not_empty(len(data["images"]), source)
    stats = SplitStats(split, data["categories"], source)
    note_reader_findings(data, stats.validation)
    skipped = check_images_of(data["images"], Path(images_dir), stats, check_images, on_bad_image, progress)
    drop_images(data, skipped)
    check_not_empty(len(data["images"]), source)
    stats.validation.num_images = len(data["images"])
    images = {img["id"]: img for img in data["images"]}
    stats.unsized = sum(not (img.get("width") and img.get("height")) for img in data["images"])
    for ann in data["annotations"]:
        img = images[ann["image_id"]]
        stats.add(ann, img.get("width"), img.get("height"), img["file_name"])
    return stats.report()
