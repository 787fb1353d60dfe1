"""Check a COCO annotation file without loading it whole, with ``ijson`` (its C backend): the
images and categories listed before the first annotation are read in one pass over the head of
the file; a list that comes later (COCO's own files put the categories last) takes one pass of
its own; then the annotations stream past, each checked, counted and forgotten. Memory: the
image records (id, file name, size) and the counts, not the file's DOM (see BENCHMARKS.md).

The checks are the trainer's (``mar_core.annotations.validate``), item by item. One difference:
a missing ``images`` or ``annotations`` key reads as an empty list (a missing ``categories`` key
reads as no categories, which is refused).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import ijson

from mar_core.annotations.image_scan import Progress
from mar_core.annotations.report import SplitReport, SplitStats
from mar_core.annotations.split_check import ImageCheck, check_images_of, sample
from mar_core.annotations.validate import (
    check_annotation,
    check_category,
    check_image_record,
    check_not_empty,
)
from mar_core.errors import DatasetError

log = logging.getLogger(__name__)

_HEAD_KEYS = ("images", "categories")
_HEAD_ITEMS = ("images.item", "categories.item")


def _stream(path: Path, source: str, read: Callable[[BinaryIO], Iterable[Any]]) -> Iterator[Any]:
    """What ``read(file)`` yields; ``DatasetError`` naming ``source`` when the file is missing,
    unreadable or not valid JSON."""
    try:
        with open(path, "rb") as f:
            yield from read(f)
    except FileNotFoundError:
        raise DatasetError(f"annotation file not found: {source}") from None
    except OSError as e:
        raise DatasetError(f"cannot read annotation file {source}: {e}") from None
    except ijson.JSONError as e:
        raise DatasetError(f"annotation file {source} is not valid JSON: {e}") from None


def stream_items(path: Path, prefix: str, source: str) -> Iterator[Any]:
    """The items under ``prefix`` (e.g. ``"images.item"``), floats as ``float``."""
    return _stream(path, source, lambda f: ijson.items(f, prefix, use_float=True))


def _lists_in_head(path: Path, source: str) -> dict[str, list]:
    """``images`` / ``categories`` complete before the first annotation (events up to there)."""
    lists: dict[str, list] = {}
    done: set[str] = set()
    builder, item = None, ""
    for prefix, event, value in _stream(path, source, lambda f: ijson.parse(f, use_float=True)):
        if builder is not None:
            builder.event(event, value)
            if prefix == item and event in ("end_map", "end_array"):
                lists[item[:-5]].append(builder.value)
                builder = None
        elif prefix in _HEAD_ITEMS and prefix[:-5] in lists:
            if event in ("start_map", "start_array"):
                builder, item = ijson.ObjectBuilder(), prefix
                builder.event(event, value)
            else:
                lists[prefix[:-5]].append(value)
        elif prefix in _HEAD_KEYS and event == "start_array":
            lists[prefix] = []
        elif prefix in _HEAD_KEYS and event == "end_array":
            done.add(prefix)
            if done == set(_HEAD_KEYS):
                break
        elif prefix == "annotations":
            break
    return {k: v for k, v in lists.items() if k in done}


def check_coco_file(
    path: Path,
    images_dir: Path,
    split: str,
    source: str,
    check_images: ImageCheck = True,
    on_bad_image: str = "refuse",
    progress: Progress | None = None,
) -> SplitReport:
    """The report of one COCO annotation file (``source``: its name in messages)."""
    head = _lists_in_head(path, source)
    categories: list[dict] = []
    cat_ids: set[Any] = set()
    for cat in head.pop("categories", None) or stream_items(path, "categories.item", source):
        check_category(cat, source, cat_ids)
        cat_ids.add(cat["id"])
        categories.append({"id": cat["id"], "name": cat.get("name", cat["id"])})
    if not categories:
        raise DatasetError(f"{source}: no categories")

    sizes: dict[Any, tuple[str, Any, Any]] = {}  # image id -> (file_name, width, height)
    for img in head.pop("images", None) or stream_items(path, "images.item", source):
        check_image_record(img, source, sizes)
        sizes[img["id"]] = (img["file_name"], img.get("width"), img.get("height"))
    check_not_empty(len(sizes), source)

    stats = SplitStats(split, categories, source)
    chosen = sample(list(sizes.items()), check_images)
    records = [{"id": k, "file_name": f, "width": w, "height": h} for k, (f, w, h) in chosen]
    skipped = check_images_of(records, Path(images_dir), stats, True, on_bad_image, progress)
    for img in records:  # sizes read from the files replace the recorded ones
        if img["id"] not in skipped:
            sizes[img["id"]] = (img["file_name"], img["width"], img["height"])
    del records
    for image_id in skipped:
        del sizes[image_id]
    check_not_empty(len(sizes), source)
    stats.validation.num_images = len(sizes)
    stats.unsized = sum(not (w and h) for _, w, h in sizes.values())

    for ann in stream_items(path, "annotations.item", source):
        if isinstance(ann, dict) and ann.get("image_id") in skipped:
            continue  # the boxes of an image left out (on_bad_image "skip")
        check_annotation(ann, sizes, cat_ids, source)
        file_name, width, height = sizes[ann["image_id"]]
        stats.add(ann, width, height, file_name)
    return stats.report()
