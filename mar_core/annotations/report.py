"""What a dataset check found: ``SplitStats`` counts one split's boxes under the trainer's rule
(``clip_box``: clipped, dropped) as they stream past; ``DatasetReport`` holds every split."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mar_core.annotations.validate import BoxIssue, ValidationReport, clip_box, kept_area, size_bucket

SIZE_BUCKETS = ("small", "medium", "large")


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


class SplitStats:
    """Counts of one split, fed one annotation at a time (nothing of it is kept but its counts
    and, for the clipped and dropped boxes, a ``BoxIssue``).

    ``categories``: the split's checked category records; class names are listed in order of
    their ids, as the trainer numbers them. An image of unknown size (not recorded, not read)
    is treated as unbounded: its boxes are dropped when degenerate, never clipped.
    """

    def __init__(self, split: str, categories: list[dict], source: str):
        cats = sorted(categories, key=lambda c: c["id"])
        self.split = split
        self.source = source
        self.names = {c["id"]: str(c.get("name", c["id"])) for c in cats}
        self.validation = ValidationReport(name=f"{split} ({source})")
        self.per_class: Counter[Any] = Counter()
        self.sizes: Counter[str] = Counter()
        self.with_boxes: set[Any] = set()
        self.unsized = 0
        self.images_checked = 0

    def add(self, ann: dict, width: Any, height: Any, file_name: str) -> None:
        """Count one checked annotation of the image ``file_name`` (``width`` x ``height``)."""
        if not (_positive(width) and _positive(height)):
            width = height = math.inf
        box, clipped = clip_box(ann["bbox"], width, height)
        if box is None or clipped:
            issue = BoxIssue(ann.get("id", -1), file_name, tuple(float(v) for v in ann["bbox"]))
            (self.validation.dropped if box is None else self.validation.clipped).append(issue)
            if box is None:
                return
        self.validation.num_boxes += 1
        if ann.get("iscrowd", 0):
            self.validation.num_crowd += 1
            return
        self.per_class[ann["category_id"]] += 1
        self.sizes[size_bucket(kept_area(ann.get("area"), box, clipped))] += 1
        self.with_boxes.add(ann["image_id"])

    def report(self) -> SplitReport:
        v = self.validation
        return SplitReport(
            split=self.split,
            source=self.source,
            images=v.num_images,
            boxes=v.num_boxes - v.num_crowd,
            crowd=v.num_crowd,
            images_without_boxes=v.num_images - len(self.with_boxes),
            class_names=list(self.names.values()),
            boxes_per_class={n: self.per_class.get(k, 0) for k, n in self.names.items()},
            sizes={k: self.sizes.get(k, 0) for k in SIZE_BUCKETS},
            images_checked=self.images_checked,
            unsized_images=self.unsized,
            validation=v,
        )


@dataclass
class SplitReport:
    """One split: images, boxes (crowd apart, after the clip/drop rule), per class and COCO size
    bucket, images without boxes, image files checked, and what the rule repaired."""

    split: str
    source: str  # the annotation file or folder, relative to the dataset
    images: int
    boxes: int
    crowd: int
    images_without_boxes: int
    class_names: list[str]
    boxes_per_class: dict[str, int]
    sizes: dict[str, int]
    images_checked: int
    unsized_images: int
    validation: ValidationReport = field(repr=False)

    def warnings(self) -> list[str]:
        out = [] if self.validation.ok else [self.validation.summary()]
        if self.images_without_boxes:
            out.append(f"{self.split}: {self.images_without_boxes} of {self.images} images have no boxes")
        empty = [n for n, k in self.boxes_per_class.items() if k == 0]
        if empty:
            out.append(f"{self.split}: no boxes of class {', '.join(empty)}")
        if self.images_checked < self.images:
            out.append(f"{self.split}: {self.images_checked} of {self.images} image files checked")
        if self.unsized_images:
            out.append(
                f"{self.split}: {self.unsized_images} images have no recorded size (boxes not clipped)"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        v = self.validation
        return {
            "source": self.source,
            "images": self.images,
            "boxes": self.boxes,
            "crowd": self.crowd,
            "images_without_boxes": self.images_without_boxes,
            "classes": len(self.class_names),
            "class_names": self.class_names,
            "boxes_per_class": self.boxes_per_class,
            "sizes": self.sizes,
            "clipped": v.num_clipped,
            "dropped": v.num_dropped,
            "size_mismatch": len(v.size_mismatch),
            "images_checked": self.images_checked,
            "repaired": len(v.repaired),
            "repaired_files": v.repaired[:20],
            "skipped": len(v.skipped),
            "skipped_files": v.skipped[:20],  # "file (why)"
            "duplicates": len(v.duplicates),
            "leaked": len(v.leaked),
            "orphan_labels": len(v.orphans),
        }


@dataclass
class DatasetReport:
    """Every split checked, label files of no split without an image (``orphans``), and the
    warnings (problems that do not stop training)."""

    format: str
    splits: dict[str, SplitReport]
    orphans: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        out = [w for s in self.splits.values() for w in s.warnings()]
        if self.orphans:
            listed = ", ".join(self.orphans[:5]) + (" ..." if len(self.orphans) > 5 else "")
            out.append(f"{len(self.orphans)} annotation files without an image, in no split ({listed})")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "splits": {k: s.to_dict() for k, s in self.splits.items()},
            "warnings": self.warnings,
        }
