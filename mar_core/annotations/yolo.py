"""Ultralytics YOLO datasets read directly, converted to an in-memory COCO dict.

``{root}/data.yaml`` holds ``names`` (a list, or ``{id: name}`` with ids 0..K-1), an optional
``path`` (the dataset folder, relative to the yaml's; one outside the dataset, e.g. an absolute
path of the machine that exported it, is ignored) and one entry per split (``train:``, ``val:``,
``test:``) naming an images folder or a list of them (``images/train``, ``train/images``; a
leading ``../`` that leads nowhere is dropped, as Ultralytics does for Roboflow's exports).
Each image's labels are in the file at its path with the last ``/images/`` replaced by
``/labels/`` and the suffix by ``.txt`` (no file: no objects); one object a line, ``class cx cy
w h`` normalised to [0, 1]. Sizes come from the image headers (nothing decoded; EXIF orientation
applied, as Ultralytics does), so every image is opened: one that cannot be identified is refused
(``BadImageError``) or, with ``on_bad_image="skip"``, left out and listed in the dict's
``info["skipped_images"]``. A label file of no image is listed in ``info["orphan_labels"]``.
Boxes become 0-based pixel ``[x, y, w, h]``; class ``c`` becomes category ``c + 1``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mar_core.annotations.coco import in_memory_coco
from mar_core.annotations.validate import image_size
from mar_core.errors import BadImageError, DatasetError, SplitNotFoundError
from mar_core.paths import is_inside, shown_path
from mar_core.spec import DatasetSpec

log = logging.getLogger(__name__)

YAML_NAMES = ("data.yaml", "data.yml")
IMAGE_SUFFIXES = frozenset({".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp"})
COORD_TOLERANCE = 0.01  # normalised coordinates this far outside [0, 1] are clipped, not refused


@dataclass(frozen=True)
class YoloConfig:
    """What ``data.yaml`` says: the file, the class names, the folder split entries are relative
    to, and the raw split entries."""

    yaml_path: Path
    names: list[str]
    base: Path
    splits: dict[str, Any]


def find_yaml(root: Path) -> Path | None:
    """``data.yaml`` (or ``data.yml``) of the dataset at ``root``, None when there is none."""
    return next((root / n for n in YAML_NAMES if (root / n).is_file()), None)


def _class_names(raw: Any, where: str) -> list[str]:
    if isinstance(raw, list) and raw:
        return [str(n) for n in raw]
    if isinstance(raw, dict) and raw:
        try:
            by_id = {int(k): str(v) for k, v in raw.items()}
        except (TypeError, ValueError):
            by_id = {}
        if sorted(by_id) == list(range(len(raw))):
            return [by_id[i] for i in range(len(raw))]
    raise DatasetError(f"{where}: 'names' must be a non-empty list or a mapping of ids 0..K-1 to names")


def read_yolo_config(root: Path) -> YoloConfig:
    """Parse ``data.yaml``; ``DatasetError`` naming the file when it is missing or malformed."""
    root = Path(root)
    path = find_yaml(root)
    if path is None:
        raise DatasetError(f"YOLO dataset file not found: {root / YAML_NAMES[0]}")
    where = shown_path(path, root)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DatasetError(f"{where} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{where}: expected a mapping with 'names' and the split folders")
    names = _class_names(data.get("names"), where)
    if "nc" in data and data["nc"] != len(names):
        raise DatasetError(f"{where}: nc is {data['nc']!r} but 'names' holds {len(names)} classes")
    base = path.parent
    if isinstance(data.get("path"), str) and data["path"]:
        candidate = base / data["path"]
        if candidate.is_dir() and is_inside(candidate, root):
            base = candidate
        else:
            log.info("%s: path %r is not a folder inside the dataset; using %s", where, data["path"], base)
    splits = {k: v for k, v in data.items() if k not in ("names", "nc", "path", "download")}
    return YoloConfig(path, names, base, splits)


def _split_dir(cfg: YoloConfig, root: Path, entry: Any, split: str) -> Path:
    where = shown_path(cfg.yaml_path, root)
    if not isinstance(entry, str) or not entry:
        raise DatasetError(f"{where}: {split!r} must name an images folder (got {entry!r:.100})")
    folder = cfg.base / entry
    if not folder.exists() and entry.startswith("../"):
        folder = cfg.base / entry[3:]
    if not is_inside(folder, root):
        raise DatasetError(f"{where}: {split}: {entry!r} lies outside the dataset folder")
    if folder.suffix == ".txt":
        raise DatasetError(f"{where}: {split}: image list files ({entry}) are not supported; name a folder")
    if not folder.is_dir():
        raise DatasetError(f"{where}: {split}: images folder not found: {shown_path(folder, root)}")
    return folder


def split_folders(cfg: YoloConfig, root: Path, split: str) -> list[Path]:
    """The images folders of ``split``; ``SplitNotFoundError`` when ``data.yaml`` has no entry."""
    if cfg.splits.get(split) is None:
        have = ", ".join(k for k, v in cfg.splits.items() if isinstance(v, (str, list))) or "none"
        raise SplitNotFoundError(f"{shown_path(cfg.yaml_path, root)} has no {split!r} entry (splits: {have})")
    entry = cfg.splits[split]
    entries = entry if isinstance(entry, list) else [entry]
    return [_split_dir(cfg, root, e, split) for e in entries]


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``/images/`` of the path becomes ``/labels/``, the suffix ``.txt``."""
    head, sep, tail = image.as_posix().rpartition("/images/")
    return Path(f"{head}/labels/{tail}" if sep else tail).with_suffix(".txt")


def parse_label_line(line: str, num_classes: int, where: str) -> tuple[int, float, float, float, float]:
    """``class cx cy w h`` of one line; ``DatasetError`` naming ``where`` (file and line)."""
    parts = line.split()
    if len(parts) != 5:
        raise DatasetError(f"{where}: expected 5 numbers 'class cx cy w h', got {len(parts)}")
    try:
        values = [float(v) for v in parts]
    except ValueError:
        raise DatasetError(f"{where}: not a number in {line.strip()!r}") from None
    cls = values[0]
    if not (cls.is_integer() and 0 <= cls < num_classes):
        raise DatasetError(f"{where}: class {parts[0]} is not in data.yaml names (0..{num_classes - 1})")
    coords = values[1:]
    if not all(math.isfinite(v) and -COORD_TOLERANCE <= v <= 1 + COORD_TOLERANCE for v in coords):
        raise DatasetError(f"{where}: coordinates {' '.join(parts[1:])} are not normalised to [0, 1]")
    return int(cls), *coords


def read_labels(path: Path, num_classes: int, root: Path) -> list[tuple[int, float, float, float, float]]:
    """Every object of one label file (none when the file does not exist)."""
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read label file {shown_path(path, root)}: {e}") from None
    return [
        parse_label_line(line, num_classes, f"{shown_path(path, root)} line {n}")
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def _images(folders: list[Path]) -> list[Path]:
    return sorted(p for f in folders for p in f.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def orphan_labels(folders: list[Path], images: list[Path], root: Path) -> list[str]:
    """The label files (``*.txt``) beside ``folders``' images that belong to none of ``images``."""
    used = {label_path(p) for p in images}
    found: set[Path] = set()
    for folder in folders:
        labels = label_path(folder / "x").parent
        if labels != folder and labels.is_dir():
            found.update(p for p in labels.rglob("*.txt") if p not in used)
    return sorted(shown_path(p, root) for p in found)


def load_yolo(
    root: Path, split: str, images_dir: Path | None = None, on_bad_image: str = "refuse"
) -> tuple[dict, Path]:
    """Read split ``split`` of the YOLO dataset at ``root`` as ``(coco_dict, images_dir)``.

    ``images_dir`` replaces the folders ``data.yaml`` names for the split.
    """
    root = Path(root)
    cfg = read_yolo_config(root)
    if images_dir is not None:
        if not Path(images_dir).is_dir():
            raise DatasetError(f"images folder not found: {images_dir}")
        folders = [Path(images_dir)]
    else:
        folders = split_folders(cfg, root, split)
    top = folders[0] if len(folders) == 1 else cfg.base
    images, annotations, skipped = [], [], []
    paths = _images(folders)
    for image_id, path in enumerate(paths, start=1):
        try:
            width, height = image_size(path, f"{root.name} {split}")
        except BadImageError as e:
            if on_bad_image != "skip":
                raise
            skipped.append(f"{path.relative_to(top).as_posix()} ({e.message.rsplit(': ', 1)[-1]})")
            continue
        images.append(
            {"id": image_id, "file_name": path.relative_to(top).as_posix(), "width": width, "height": height}
        )
        for cls, cx, cy, w, h in read_labels(label_path(path), len(cfg.names), root):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cls + 1,
                    "bbox": [(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height],
                    "iscrowd": 0,
                }
            )
    log.debug("YOLO %s %s: %d images, %d objects", root.name, split, len(images), len(annotations))
    data = in_memory_coco(f"YOLO {root.name} {split}", images, annotations, cfg.names)
    data["info"].update(skipped_images=skipped, orphan_labels=orphan_labels(folders, paths, root))
    return data, top


def read_yolo(root: Path, split: str, images_dir: Path | None, spec: DatasetSpec) -> tuple[dict, Path]:
    """The registry's reader for ``yolo``."""
    return load_yolo(root, split, images_dir, spec.on_bad_image)
