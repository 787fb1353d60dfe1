"""COCO-format datasets: ``{root}/annotations/instances_{split}.json``, images in ``{root}/{split}/``.

Category ids in a file may be arbitrary (COCO's own run 1..90 with gaps); they are remapped to
contiguous labels 1..K sorted by original id (0 stays the background), names kept.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from mar_core.data.validate import check_structure
from mar_core.errors import DatasetError

log = logging.getLogger(__name__)


def annotation_file(root: Path, split: str) -> Path:
    return Path(root) / "annotations" / f"instances_{split}.json"


def read_coco_json(path: Path) -> dict:
    """Parse one annotation file; a missing, unreadable or invalid file raises ``DatasetError``."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DatasetError(f"annotation file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read annotation file {path}: {e}") from None
    except json.JSONDecodeError as e:
        raise DatasetError(f"annotation file {path} is not valid JSON: {e}") from None
    check_structure(data, str(path))
    return data


def remap_categories(data: dict) -> dict:
    """Return ``data`` with category ids 1..K in order of the original ids (in place).

    Annotations follow their category. Already contiguous ids are left as they are.
    """
    cats = sorted(data["categories"], key=lambda c: c["id"])
    mapping = {c["id"]: k for k, c in enumerate(cats, start=1)}
    if all(old == new for old, new in mapping.items()) and data["categories"] == cats:
        return data
    log.debug("remapping %d category ids to 1..%d", len(cats), len(cats))
    data["categories"] = [{**c, "id": mapping[c["id"]], "name": str(c.get("name", c["id"]))} for c in cats]
    for ann in data["annotations"]:
        ann["category_id"] = mapping[ann["category_id"]]
    return data


def load_coco(root: Path, split: str, images_dir: Path | None = None) -> tuple[dict, Path]:
    """Read split ``split`` of the COCO dataset at ``root``.

    Returns ``(coco_dict, images_dir)`` with categories remapped to 1..K; the dict is not yet
    box-validated (``DetectionDataset`` does that).
    """
    root = Path(root)
    data = read_coco_json(annotation_file(root, split))
    remap_categories(data)
    images_dir = Path(images_dir) if images_dir is not None else root / split
    if not images_dir.is_dir():
        raise DatasetError(f"images folder not found: {images_dir}")
    return data, images_dir
