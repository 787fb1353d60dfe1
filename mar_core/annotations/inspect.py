"""Check a dataset before a job is queued (torch-free: the API calls it at submit and upload).

``inspect_dataset(spec, data_roots)`` reads each split as the trainer would (a COCO file
streamed, see ``coco_stream``), applies the trainer's checks and clip/drop rule, and returns a
``DatasetReport``; a fault the trainer would refuse raises ``DatasetError`` naming the file and
the image or line, its ``param`` the spec field. ``detect_format(root)`` and
``find_splits(root, fmt)`` describe an uploaded folder whose format and splits are not given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from mar_core import names
from mar_core.annotations.coco import ROBOFLOW_FILE, locate_coco
from mar_core.annotations.coco_stream import check_coco_file
from mar_core.annotations.containment import check_folders_inside
from mar_core.annotations.image_scan import Progress
from mar_core.annotations.readers import (
    check_split_name,
    dataset_root,
    name_param,
    read_split,
    spec_images_dir,
    split_param,
)
from mar_core.annotations.report import DatasetReport, SplitReport
from mar_core.annotations.split_check import ImageCheck, check_split_dict
from mar_core.annotations.voc import orphan_annotations
from mar_core.annotations.yolo import find_yaml, read_yolo_config
from mar_core.errors import DatasetError
from mar_core.paths import shown_path
from mar_core.spec import DatasetSpec

log = logging.getLogger(__name__)

_SPLIT_ORDER = ("train", "val", "valid", "test")


# progress(split) -> the callback of that split's image decoding (done, total)
SplitProgress = Callable[[str], Progress]


def _check_split(
    spec: DatasetSpec,
    root: Path,
    split: str,
    data_roots: list[Path] | None,
    check_images: ImageCheck,
    progress: Progress | None,
) -> SplitReport:
    if spec.format == "coco":
        images_dir = spec_images_dir(spec, root, split, data_roots)
        ann_path, images_dir = locate_coco(root, split, spec.annotation_file, images_dir)
        check_folders_inside(root, images_dir, data_roots)
        source = shown_path(ann_path, root)
        return check_coco_file(ann_path, images_dir, split, source, check_images, spec.on_bad_image, progress)
    whole = spec.model_copy(update={"max_images": None})
    data, images_dir, _ = read_split(whole, split, data_roots)
    source = f"ImageSets/Main/{split}.txt" if spec.format == "voc" else shown_path(images_dir, root)
    return check_split_dict(data, images_dir, split, source, check_images, spec.on_bad_image, progress)


def note_leakage(reports: dict[str, SplitReport]) -> None:
    """Count, in each split, the images whose bytes an earlier split (in check order) also holds."""
    seen: dict[str, str] = {}  # digest -> "split/file"
    for split, rep in reports.items():
        v = rep.validation
        v.leaked.extend((f, seen[d]) for d, f in v.digests.items() if d in seen)
        for d, f in v.digests.items():
            seen.setdefault(d, f"{split}/{f}")


def inspect_dataset(
    spec: DatasetSpec,
    data_roots: list[Path] | None = None,
    splits: list[str] | None = None,
    check_images: ImageCheck = True,
    progress: SplitProgress | None = None,
) -> DatasetReport:
    """Check ``splits`` (default: the spec's train and val splits) of the dataset ``spec`` names.

    ``check_images``: decode every image file in full (True; in parallel processes), none (False
    or 0), or N evenly spaced ones. YOLO reads every header regardless (its sizes are needed).
    ``spec.max_images`` is ignored: the whole split is checked. Raises ``DatasetError``
    (``param``: the spec field, e.g. ``dataset.path``, ``dataset.val_split``) for a fault the
    trainer would refuse: missing images, undecodable ones (unless ``spec.on_bad_image`` is
    ``"skip"``: left out, counted), unknown ids, duplicate image ids, an empty split, bad label
    lines, broken JSON/XML/YAML, class names that differ between splits. Warnings: repaired
    (truncated) images, duplicate images in a split and across splits, orphan label files.
    """
    if spec.format not in names.DATASET_FORMATS:
        valid = ", ".join(names.DATASET_FORMATS)
        raise DatasetError(f"unknown dataset format {spec.format!r}; valid: {valid}", param="dataset.format")
    root = dataset_root(spec, data_roots)
    wanted = list(dict.fromkeys(splits or (spec.train_split, spec.val_split)))
    reports: dict[str, SplitReport] = {}
    for split in wanted:
        check_split_name(spec, split)
        try:
            bar = progress(split) if progress is not None else None
            reports[split] = _check_split(spec, root, split, data_roots, check_images, bar)
        except DatasetError as e:
            raise name_param(e, spec, split) from None
    first = reports[wanted[0]]
    for split, rep in reports.items():
        if rep.class_names != first.class_names:
            raise DatasetError(
                f"the splits disagree on the classes: {first.split} has {first.class_names}, "
                f"{split} has {rep.class_names}",
                param=split_param(spec, split),
            )
    note_leakage(reports)
    orphans = (
        orphan_annotations(root, spec_images_dir(spec, root, wanted[0], data_roots))
        if spec.format == "voc"
        else []
    )
    report = DatasetReport(format=spec.format, splits=reports, orphans=orphans)
    for w in report.warnings:
        log.info("%s: %s", root.name, w)
    return report


def detect_format(root: Path) -> str:
    """``yolo`` (a ``data.yaml``), ``voc`` (``Annotations/`` and ``ImageSets/Main/``) or ``coco``
    (``annotations/*.json`` or a Roboflow ``{split}/_annotations.coco.json``); ``DatasetError``
    (``dataset.format``) when the folder is none of them."""
    root = Path(root)
    if find_yaml(root) is not None:
        return "yolo"
    if (root / "Annotations").is_dir() and (root / "ImageSets" / "Main").is_dir():
        return "voc"
    if any((root / "annotations").glob("*.json")) or any(root.glob(f"*/{ROBOFLOW_FILE}")):
        return "coco"
    raise DatasetError(
        f"cannot tell the format of {root.name or root}: no data.yaml (yolo), Annotations/ + "
        f"ImageSets/Main/ (voc), annotations/*.json or */{ROBOFLOW_FILE} (coco)",
        param="dataset.format",
    )


def _ordered(found: set[str]) -> list[str]:
    return [s for s in _SPLIT_ORDER if s in found] + sorted(found - set(_SPLIT_ORDER))


def find_splits(root: Path, fmt: str) -> list[str]:
    """The split names of the dataset at ``root`` in format ``fmt`` (train, val, test first).

    Names are as on disk (a Roboflow ``valid``; the spec's ``val`` finds it too). COCO: the
    ``annotations/instances_{split}.json`` and ``{split}/_annotations.coco.json`` files; VOC: the
    ``ImageSets/Main/{split}.txt`` lists (not the per-class ``{class}_{split}.txt``); YOLO: the
    split entries of ``data.yaml``.
    """
    root = Path(root)
    if fmt == "coco":
        found = {p.stem.removeprefix("instances_") for p in (root / "annotations").glob("instances_*.json")}
        found |= {p.parent.name for p in root.glob(f"*/{ROBOFLOW_FILE}")}
    elif fmt == "voc":
        stems = {p.stem for p in (root / "ImageSets" / "Main").glob("*.txt")}
        found = {s for s in stems if not ("_" in s and s.rsplit("_", 1)[1] in stems)}
    elif fmt == "yolo":
        cfg = read_yolo_config(root)
        found = {k for k, v in cfg.splits.items() if isinstance(v, (str, list)) and v}
    else:
        raise DatasetError(f"unknown dataset format {fmt!r}", param="dataset.format")
    return _ordered(found)
