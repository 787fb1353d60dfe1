"""Pascal VOC datasets read directly: ``{root}/Annotations/*.xml``, ``{root}/JPEGImages``, split
lists ``{root}/ImageSets/Main/{split}.txt``; converted to an in-memory COCO dict.

VOC pixel coordinates are 1-based and inclusive: a box becomes ``[xmin - 1, ymin - 1, xmax, ymax]``
in 0-based pixel edges (as torchvision and detectron2 do). A box with ``xmax <= xmin`` or
``ymax <= ymin`` marks no area (a click, not a box): it gets width/height <= 0 so validation
reports and drops it. ``difficult=1`` becomes ``iscrowd=1`` (kept for COCOeval to ignore, never
trained on). Image sizes come from ``<size>``; ``DetectionDataset`` checks them against the file.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path

from mar_core.annotations.coco import in_memory_coco
from mar_core.errors import DatasetError, SplitNotFoundError
from mar_core.spec import DatasetSpec

log = logging.getLogger(__name__)

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


def _parse(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except FileNotFoundError:
        raise DatasetError(f"VOC annotation file not found: {path}") from None
    except (ET.ParseError, OSError) as e:
        raise DatasetError(f"cannot parse VOC annotation file {path}: {e}") from None


def _annotation_stems(root: Path) -> list[str]:
    ann_dir = root / "Annotations"
    if not ann_dir.is_dir():
        raise DatasetError(f"VOC Annotations folder not found: {ann_dir}")
    return sorted(p.stem for p in ann_dir.glob("*.xml"))


def voc_class_names(root: Path) -> list[str]:
    """Sorted unique object names over every annotation file of the dataset (all splits)."""
    root = Path(root)
    names: set[str] = set()
    for stem in _annotation_stems(root):
        for obj in _parse(root / "Annotations" / f"{stem}.xml").iter("object"):
            names.add((obj.findtext("name") or "").strip())
    names.discard("")
    if not names:
        raise DatasetError(f"no object names found in {root / 'Annotations'}")
    return sorted(names)


def read_split(root: Path, split: str) -> list[str]:
    """Image ids listed in ``ImageSets/Main/{split}.txt`` (first column, blank lines skipped)."""
    path = Path(root) / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file():
        found = sorted(p.stem for p in path.parent.glob("*.txt")) if path.parent.is_dir() else []
        listed = ", ".join(found) or "none"
        raise SplitNotFoundError(f"VOC split file not found: {path} (available splits: {listed})")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(float(text)) if text is not None else None
    except ValueError:
        return None


def _number(text: str | None) -> float:
    try:
        return float(text) if text is not None else float("nan")
    except ValueError:
        return float("nan")


def voc_box_to_xywh(xmin: float, ymin: float, xmax: float, ymax: float) -> list[float]:
    """1-based inclusive VOC corners -> 0-based ``[x, y, w, h]``; zero-extent boxes get w/h <= 0."""
    w = xmax - xmin + 1 if xmax > xmin else xmax - xmin
    h = ymax - ymin + 1 if ymax > ymin else ymax - ymin
    return [xmin - 1, ymin - 1, w, h]


def _image_file(images_dir: Path, stem: str, xml_name: str | None) -> str:
    for suffix in _IMAGE_SUFFIXES:
        if (images_dir / f"{stem}{suffix}").is_file():
            return f"{stem}{suffix}"
    if xml_name and (images_dir / xml_name).is_file():
        return xml_name
    return f"{stem}.jpg"  # missing: validation names it


def orphan_annotations(root: Path, images_dir: Path | None = None) -> list[str]:
    """``Annotations/*.xml`` files that no split list names and whose image file is not in the
    images folder (a labelled image removed from the export); an XML a split lists without its
    image is refused when the split is read."""
    root = Path(root)
    images_dir = Path(images_dir) if images_dir is not None else root / "JPEGImages"
    lists = (root / "ImageSets" / "Main").glob("*.txt")
    listed = {line.split()[0] for p in lists for line in p.read_text().splitlines() if line.strip()}
    orphans = []
    for stem in _annotation_stems(root):
        if stem not in listed and not any((images_dir / f"{stem}{s}").is_file() for s in _IMAGE_SUFFIXES):
            orphans.append(f"Annotations/{stem}.xml")
    return orphans


def load_voc(
    root: Path, split: str, images_dir: Path | None = None, class_names: list[str] | None = None
) -> tuple[dict, Path]:
    """Read split ``split`` of the VOC dataset at ``root`` as ``(coco_dict, images_dir)``.

    Category ``k`` (1-based) is ``class_names[k-1]``; ``class_names`` defaults to
    ``voc_class_names(root)``. An object whose name is not a class raises ``DatasetError``.
    Image ids are 1-based positions among all annotation files, so they agree across splits.
    """
    root = Path(root)
    images_dir = Path(images_dir) if images_dir is not None else root / "JPEGImages"
    if not images_dir.is_dir():
        raise DatasetError(f"VOC images folder not found: {images_dir}")
    stems = _annotation_stems(root)
    names = list(class_names) if class_names else voc_class_names(root)
    if len(set(names)) != len(names):
        raise DatasetError(f"dataset.class_names has duplicates: {names}", param="dataset.class_names")
    label = {n: k for k, n in enumerate(names, start=1)}
    image_id = {s: i for i, s in enumerate(stems, start=1)}
    images, annotations = [], []
    for stem in read_split(root, split):
        xml_path = root / "Annotations" / f"{stem}.xml"
        if stem not in image_id:
            raise DatasetError(f"VOC annotation file not found: {xml_path} (listed in split {split!r})")
        node = _parse(xml_path)
        file_name = _image_file(images_dir, stem, node.findtext("filename"))
        images.append(
            {
                "id": image_id[stem],
                "file_name": file_name,
                "width": _int_or_none(node.findtext("size/width")),
                "height": _int_or_none(node.findtext("size/height")),
            }
        )
        for obj in node.iter("object"):
            name = (obj.findtext("name") or "").strip()
            if name not in label:
                raise DatasetError(f"{xml_path}: object class {name!r} is not one of {names}")
            corners = [_number(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
            difficult = _int_or_none(obj.findtext("difficult")) == 1
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id[stem],
                    "category_id": label[name],
                    "bbox": voc_box_to_xywh(*corners),
                    "iscrowd": int(difficult),
                }
            )
    log.debug("VOC %s %s: %d images, %d objects", root.name, split, len(images), len(annotations))
    return in_memory_coco(f"VOC {root.name} {split}", images, annotations, names), images_dir


def read_voc(root: Path, split: str, images_dir: Path | None, spec: DatasetSpec) -> tuple[dict, Path]:
    """The registry's reader for ``voc``."""
    return load_voc(root, split, images_dir, spec.class_names)
