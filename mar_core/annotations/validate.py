"""Validate a COCO-format dict before training: structure, image files, boxes.

Structural faults (missing keys, unknown category or image ids) raise ``DatasetError`` at load
time. A missing image file raises ``DatasetError``, one that cannot be decoded ``BadImageError``,
naming it; either is left out with its boxes and counted when ``on_bad_image`` is ``"skip"``; a
truncated JPEG that decodes with the truncated-image option is *repaired* (counted, named).
Box faults are repaired and counted: boxes reaching outside the image are clipped to it,
degenerate boxes (width or height <= 0 after clipping, or non-finite) are dropped. One
``logging.warning`` per split summarises what was repaired. Image sizes are the displayed ones
(EXIF orientation applied, ``mar_core.image_io``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Container
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mar_core.annotations.image_scan import Progress, scan_files
from mar_core.errors import BadImageError, DatasetError, SplitNotFoundError
from mar_core.image_io import ImageFacts, probe

log = logging.getLogger(__name__)

_MAX_LISTED = 5  # offending files named in the warning
SMALL_AREA, LARGE_AREA = 32**2, 96**2  # COCO's size buckets, absolute pixel area


@dataclass(frozen=True)
class BoxIssue:
    """One repaired annotation: its id, its image file and its box ``[x, y, w, h]`` as given."""

    ann_id: int
    file_name: str
    bbox: tuple[float, float, float, float]


@dataclass
class ValidationReport:
    """What validation changed in one split. ``clipped``/``dropped`` hold the offending boxes."""

    name: str
    num_images: int = 0
    num_boxes: int = 0  # annotations kept, crowd included
    num_crowd: int = 0
    clipped: list[BoxIssue] = field(default_factory=list)
    dropped: list[BoxIssue] = field(default_factory=list)
    size_mismatch: list[str] = field(default_factory=list)  # files whose recorded size was wrong
    repaired: list[str] = field(default_factory=list)  # truncated files, decoded with the rest grey
    skipped: list[str] = field(default_factory=list)  # "file (why)": undecodable, left out (skip)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (file, earlier file, same bytes)
    leaked: list[tuple[str, str]] = field(default_factory=list)  # (file, "split/file" with its bytes)
    orphans: list[str] = field(default_factory=list)  # label files without an image
    digests: dict[str, str] = field(default_factory=dict, repr=False)  # bytes digest -> first file

    @property
    def num_clipped(self) -> int:
        return len(self.clipped)

    @property
    def num_dropped(self) -> int:
        return len(self.dropped)

    @property
    def ok(self) -> bool:
        files = self.repaired or self.skipped or self.duplicates or self.leaked or self.orphans
        return not (self.clipped or self.dropped or self.size_mismatch or files)

    def summary(self) -> str:
        """One line, e.g. ``BCCD train: dropped 1 degenerate box (BloodImage_00343.jpg), clipped 0``
        (the box counts left out when only files were repaired, skipped or found twice)."""
        parts = []
        if self.clipped or self.dropped or self.size_mismatch or self.ok:
            parts += [
                f"dropped {_plural(self.num_dropped, 'degenerate box', 'degenerate boxes')}"
                + _files(self.dropped),
                f"clipped {self.num_clipped}" + _files(self.clipped),
            ]
        if self.size_mismatch:
            listed = ", ".join(self.size_mismatch[:_MAX_LISTED])
            more = " ..." if len(self.size_mismatch) > _MAX_LISTED else ""
            parts.append(
                f"image size differs from the annotation in {len(self.size_mismatch)} "
                f"(using the real size: {listed}{more})"
            )
        if self.repaired:
            parts.append(
                f"{len(self.repaired)} repaired (truncated, the missing part decoded grey: "
                f"{_names(self.repaired)})"
            )
        if self.skipped:
            parts.append(
                f"skipped {_plural(len(self.skipped), 'unreadable image', 'unreadable images')} "
                f"({_names(self.skipped)})"
            )
        if self.duplicates:
            pairs = [f"{a} = {b}" for a, b in self.duplicates]
            dupes = _plural(len(self.duplicates), "duplicate image", "duplicate images")
            parts.append(f"{dupes}, same bytes as another ({_names(pairs)})")
        if self.leaked:
            pairs = [f"{a} = {b}" for a, b in self.leaked]
            leaked = _plural(len(self.leaked), "image", "images")
            parts.append(f"{leaked} also in another split (leakage: {_names(pairs)})")
        if self.orphans:
            parts.append(
                f"{_plural(len(self.orphans), 'label file', 'label files')} without an image "
                f"(ignored: {_names(self.orphans)})"
            )
        return f"{self.name}: " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.num_images,
            "boxes": self.num_boxes,
            "crowd": self.num_crowd,
            "clipped": self.num_clipped,
            "dropped": self.num_dropped,
            "size_mismatch": len(self.size_mismatch),
            "repaired": len(self.repaired),
            "skipped": len(self.skipped),
            "duplicates": len(self.duplicates),
            "leaked": len(self.leaked),
            "orphans": len(self.orphans),
            "repaired_files": self.repaired[:20],
            "skipped_files": self.skipped[:20],
            "dropped_boxes": [
                {"ann_id": b.ann_id, "file_name": b.file_name, "bbox": list(b.bbox)}
                for b in self.dropped[:20]
            ],  # the first 20
        }


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _names(names: list[str]) -> str:
    more = " ..." if len(names) > _MAX_LISTED else ""
    return ", ".join(names[:_MAX_LISTED]) + more


def _files(issues: list[BoxIssue]) -> str:
    if not issues:
        return ""
    names = list(dict.fromkeys(i.file_name for i in issues))
    more = " ..." if len(names) > _MAX_LISTED else ""
    return f" ({', '.join(names[:_MAX_LISTED])}{more})"


def check_structure(data: Any, source: str) -> None:
    """Raise ``DatasetError`` unless ``data`` is a COCO dict whose references all resolve.

    Checks: ``images``/``annotations``/``categories`` lists; unique image and category ids;
    every annotation names a known image and category and has a 4-number ``bbox``.
    """
    if not isinstance(data, dict):
        raise DatasetError(f"{source}: expected a JSON object with images/annotations/categories")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise DatasetError(f"{source}: missing key {key!r}")
        if not isinstance(data[key], list):
            raise DatasetError(f"{source}: {key!r} must be a list")
    image_ids: set[Any] = set()
    for img in data["images"]:
        check_image_record(img, source, image_ids)
        image_ids.add(img["id"])
    cat_ids: set[Any] = set()
    for cat in data["categories"]:
        check_category(cat, source, cat_ids)
        cat_ids.add(cat["id"])
    for ann in data["annotations"]:
        check_annotation(ann, image_ids, cat_ids, source)


def check_image_record(img: Any, source: str, seen: Container[Any]) -> None:
    """One ``images`` entry: an object with an ``id`` not in ``seen`` and a relative ``file_name``."""
    if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
        raise DatasetError(f"{source}: every image needs an 'id' and a 'file_name' (got {img!r:.200})")
    if img["id"] in seen:
        raise DatasetError(f"{source}: duplicate image id {img['id']!r} ({img['file_name']})")
    _check_relative(img["file_name"], source)


def check_category(cat: Any, source: str, seen: Container[Any]) -> None:
    """One ``categories`` entry: an object with an ``id`` not in ``seen``."""
    if not isinstance(cat, dict) or "id" not in cat:
        raise DatasetError(f"{source}: every category needs an 'id' (got {cat!r:.200})")
    if cat["id"] in seen:
        raise DatasetError(f"{source}: duplicate category id {cat['id']!r}")


def check_annotation(ann: Any, image_ids: Container[Any], cat_ids: Container[Any], source: str) -> None:
    """One ``annotations`` entry: a known image and category, a ``bbox`` of 4 numbers."""
    if not isinstance(ann, dict):
        raise DatasetError(f"{source}: annotation is not an object: {ann!r:.200}")
    what = f"{source}: annotation {ann.get('id', '?')}"
    if ann.get("image_id") not in image_ids:
        raise DatasetError(f"{what} refers to unknown image_id {ann.get('image_id')!r}")
    if ann.get("category_id") not in cat_ids:
        known = ", ".join(map(str, sorted(cat_ids, key=str)))
        raise DatasetError(f"{what} has unknown category_id {ann.get('category_id')!r} (known: {known})")
    bbox = ann.get("bbox")
    if not (
        isinstance(bbox, (list, tuple))
        and len(bbox) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)
    ):
        raise DatasetError(f"{what} needs a bbox of 4 numbers [x, y, w, h] (got {bbox!r:.100})")


def check_not_empty(num_images: int, source: str) -> None:
    """A split without images cannot be trained or evaluated on (``SplitNotFoundError``: the
    caller names the split's spec field)."""
    if num_images == 0:
        raise SplitNotFoundError(f"{source}: the split has no images")


def _check_relative(file_name: str, source: str) -> None:
    p = PurePosixPath(file_name.replace("\\", "/"))
    if not file_name or p.is_absolute() or ".." in p.parts:
        raise DatasetError(
            f"{source}: image file_name {file_name!r} must be a relative path inside the images folder"
        )


def check_image_files(
    images: list[dict],
    images_dir: Path,
    report: ValidationReport,
    verify_sizes: bool = True,
    decode: bool = False,
    on_bad_image: str = "refuse",
    progress: Progress | None = None,
) -> set[Any]:
    """Check the image files of ``images``; return the ids of those left out (``on_bad_image``
    ``"skip"``: missing or undecodable, counted in ``report.skipped``; the caller drops them and
    their boxes).

    A missing file raises ``DatasetError``, an undecodable one ``BadImageError`` (both naming the
    file) unless skipped (labels of an image not in the export: COCO records, VOC XMLs). ``decode``: decode every file in full (in parallel processes, repaired
    and duplicate files counted), else read headers only. Fills a missing ``width``/``height``;
    with ``verify_sizes`` (or ``decode``) also compares a recorded size with the real one and
    trusts the image on mismatch. Sizes are as displayed (EXIF orientation applied).
    """
    todo = []
    skipped: set[Any] = set()
    for img in images:
        path = images_dir / img["file_name"]
        if not path.is_file():
            if on_bad_image != "skip":
                raise DatasetError(f"{report.name}: image file not found: {path}")
            report.skipped.append(f"{img['file_name']} (file not found)")  # labels of no image
            skipped.add(img["id"])
            continue
        recorded = (img.get("width"), img.get("height"))
        if decode or verify_sizes or not all(isinstance(v, int) and v > 0 for v in recorded):
            todo.append(img)
    paths = [images_dir / img["file_name"] for img in todo]
    results = scan_files(paths, progress=progress) if decode else [_probe_or_reason(p) for p in paths]
    for img, facts in zip(todo, results):
        if isinstance(facts, str):
            if on_bad_image != "skip":
                raise BadImageError(f"{report.name}: {facts}")
            report.skipped.append(f"{img['file_name']} ({facts.rsplit(': ', 1)[-1]})")
            skipped.add(img["id"])
            continue
        _note_facts(img, facts, report)
    return skipped


def _probe_or_reason(path: Path) -> ImageFacts | str:
    try:
        return probe(path)
    except BadImageError as e:
        return e.message


def _note_facts(img: dict, facts: ImageFacts, report: ValidationReport) -> None:
    """Record one readable file: repaired, a duplicate of an earlier one, its real size."""
    if facts.repaired:
        report.repaired.append(img["file_name"])
    if facts.digest:
        first = report.digests.setdefault(facts.digest, img["file_name"])
        if first != img["file_name"]:
            report.duplicates.append((img["file_name"], first))
    recorded = (img.get("width"), img.get("height"))
    real = (facts.width, facts.height)
    if recorded != real:
        if all(isinstance(v, (int, float)) and v for v in recorded):
            report.size_mismatch.append(img["file_name"])
        img["width"], img["height"] = real


def note_reader_findings(data: dict, report: ValidationReport) -> None:
    """What a reader found beside the dict (``info``): files it left out, orphan label files."""
    info = data.get("info") or {}
    report.skipped.extend(info.get("skipped_images", []))
    report.orphans.extend(info.get("orphan_labels", []))


def drop_images(data: dict, image_ids: set[Any]) -> None:
    """Remove the images ``image_ids`` and their annotations from ``data``, in place."""
    if image_ids:
        data["images"] = [img for img in data["images"] if img["id"] not in image_ids]
        data["annotations"] = [a for a in data["annotations"] if a.get("image_id") not in image_ids]


def clip_box(bbox: Any, width: float, height: float) -> tuple[list[float] | None, bool]:
    """The trainer's rule for one ``[x, y, w, h]``: ``(box clipped to the image, whether it was
    clipped)``, or ``(None, False)`` for a degenerate box (non-finite, or no area once clipped)."""
    x, y, w, h = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return None, False
    W, H = float(width), float(height)
    x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, W), min(y + h, H)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None, False
    return [x0, y0, x1 - x0, y1 - y0], (x0, y0, x1, y1) != (x, y, x + w, y + h)


def kept_area(area: Any, box: list[float], clipped: bool) -> float:
    """The ``area`` a kept box gets: the given one, else the box's; capped at the box's if clipped."""
    box_area = box[2] * box[3]
    if not isinstance(area, (int, float)) or isinstance(area, bool) or not area > 0:
        return box_area
    return min(float(area), box_area) if clipped else area


def size_bucket(area: float) -> str:
    """COCO's size bucket of an area in pixels: small (< 32^2), medium (< 96^2) or large."""
    return "small" if area < SMALL_AREA else "medium" if area < LARGE_AREA else "large"


def image_size(path: Path, source: str) -> tuple[int, int]:
    """``(width, height)`` as displayed (EXIF orientation applied), from the header (nothing
    decoded); ``BadImageError`` naming ``source`` and the file when it cannot be identified."""
    try:
        facts = probe(path)
    except BadImageError as e:
        raise BadImageError(f"{source}: {e.message}") from None
    return facts.width, facts.height


def fix_boxes(data: dict, report: ValidationReport) -> None:
    """Clip boxes to their image and drop degenerate ones, in place; count both in ``report``.

    Needs ``width``/``height`` on every image. Sets ``area`` (box area when missing, capped at
    the clipped box area) and ``iscrowd`` (0 when missing) on the kept annotations.
    """
    images = {img["id"]: img for img in data["images"]}
    kept = []
    for ann in data["annotations"]:
        img = images[ann["image_id"]]
        issue = BoxIssue(ann.get("id", -1), img["file_name"], tuple(float(v) for v in ann["bbox"]))
        box, clipped = clip_box(ann["bbox"], img["width"], img["height"])
        if box is None:
            report.dropped.append(issue)
            continue
        if clipped:
            report.clipped.append(issue)
        area = kept_area(ann.get("area"), box, clipped)
        ann.update(bbox=box, area=area, iscrowd=int(bool(ann.get("iscrowd", 0))))
        kept.append(ann)
    data["annotations"] = kept
    report.num_boxes = len(kept)
    report.num_crowd = sum(a["iscrowd"] for a in kept)


def number_annotations(data: dict) -> None:
    """Give annotations ids 1..N unless they already are unique integers >= 1 (COCOeval
    treats a ground-truth id of 0 as unmatched)."""
    ids = [a.get("id") for a in data["annotations"]]
    ok = all(isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in ids)
    ok = ok and len(set(ids)) == len(ids)
    if not ok:
        log.debug("renumbering %d annotations 1..N", len(ids))
        for i, ann in enumerate(data["annotations"], start=1):
            ann["id"] = i


def validate_dataset(
    data: dict, images_dir: Path, name: str, verify_sizes: bool = True, on_bad_image: str = "refuse"
) -> ValidationReport:
    """Run every check on ``data`` (modified in place: images left out under ``on_bad_image``
    ``"skip"``, boxes clipped or dropped) and log one warning if anything was repaired. Raises
    ``DatasetError`` for structural faults and missing image files, ``BadImageError`` for a file
    whose header cannot be read (unless skipped); files are not decoded here."""
    check_structure(data, name)
    check_not_empty(len(data["images"]), name)
    number_annotations(data)
    report = ValidationReport(name=name, num_images=len(data["images"]))
    note_reader_findings(data, report)
    skipped = check_image_files(
        data["images"], Path(images_dir), report, verify_sizes=verify_sizes, on_bad_image=on_bad_image
    )
    drop_images(data, skipped)
    check_not_empty(len(data["images"]), name)
    report.num_images = len(data["images"])
    fix_boxes(data, report)
    if not report.ok:
        log.warning("%s", report.summary())
    return report
