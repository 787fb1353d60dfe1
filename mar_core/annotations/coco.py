"""COCO-format datasets. The annotation file of a split, first found of:

- ``annotation_file`` (the spec's, relative to the root, ``{split}`` replaced);
- ``annotations/instances_{split}.json`` (COCO's own layout; CVAT's "COCO 1.0" export);
- ``{split}/_annotations.coco.json`` beside the images (Roboflow's export; its ``val`` split is
  named ``valid``, so ``val`` falls back to ``valid``).

Images: the spec's ``images_dir``, else the Roboflow file's folder, else the first folder of
``{split}/``, ``images/{split}/``, ``images/`` (CVAT), the annotation file's folder.

Category ids in a file may be arbitrary (COCO's own run 1..90 with gaps); they are remapped to
contiguous labels 1..K sorted by original id (0 stays the background), names kept.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from mar_core.annotations.validate import check_structure
from mar_core.errors import DatasetError, SplitNotFoundError
from mar_core.paths import is_inside, shown_path
from mar_core.spec import DatasetSpec

log = logging.getLogger(__name__)

ROBOFLOW_FILE = "_annotations.coco.json"
SPLIT_ALIASES = {"val": ("valid",)}  # Roboflow names its validation split "valid"


def annotation_file(root: Path, split: str) -> Path:
    """COCO's own place for a split's annotation file."""
    return Path(root) / "annotations" / f"instances_{split}.json"


def _images_candidates(root: Path, split: str, ann_path: Path, given: bool) -> list[Path]:
    if ann_path.name == ROBOFLOW_FILE:
        return [ann_path.parent]
    beside = [ann_path.parent] if given else []  # a file the spec names may sit among its images
    return [root / split, root / "images" / split, root / "images", *beside]


def locate_coco(
    root: Path, split: str, annotation_file_spec: str | None = None, images_dir: Path | None = None
) -> tuple[Path, Path]:
    """``(annotation file, images folder)`` of split ``split`` (see the module docstring).

    Raises ``SplitNotFoundError`` listing the places tried when no annotation file is there, and
    ``DatasetError`` when no images folder is.
    """
    root = Path(root)
    if annotation_file_spec:
        tried = [root / annotation_file_spec.replace("{split}", split)]
        if not is_inside(tried[0], root):
            raise DatasetError(
                f"dataset.annotation_file: {annotation_file_spec!r} lies outside the dataset folder",
                param="dataset.annotation_file",
            )
    else:
        names = (split, *SPLIT_ALIASES.get(split, ()))
        tried = [annotation_file(root, split), *(root / n / ROBOFLOW_FILE for n in names)]
    ann_path = next((p for p in tried if p.is_file()), None)
    if ann_path is None:
        listed = ", ".join(shown_path(p, root) for p in tried)
        raise SplitNotFoundError(
            f"COCO annotation file not found for split {split!r} in {root} (tried {listed})"
        )
    if images_dir is not None:
        candidates = [Path(images_dir)]
    else:
        candidates = _images_candidates(root, split, ann_path, bool(annotation_file_spec))
    found = next((p for p in candidates if p.is_dir()), None)
    if found is None:
        raise DatasetError(f"images folder not found: {candidates[0]}")
    return ann_path, found


def in_memory_coco(
    description: str, images: list[dict], annotations: list[dict], class_names: list[str]
) -> dict:
    """A COCO dict for a dataset read from another format; category ``k`` (1-based) is
    ``class_names[k-1]``."""
    categories = [{"id": k, "name": n, "supercategory": "none"} for k, n in enumerate(class_names, start=1)]
    return {
        "info": {"description": description},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


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


def load_coco(
    root: Path, split: str, images_dir: Path | None = None, annotation_file_spec: str | None = None
) -> tuple[dict, Path]:
    """Read split ``split`` of the COCO dataset at ``root`` (found as ``locate_coco`` says).

    Returns ``(coco_dict, images_dir)`` with categories remapped to 1..K; the dict is not yet
    box-validated (``validate_dataset`` does that).
    """
    ann_path, images_dir = locate_coco(Path(root), split, annotation_file_spec, images_dir)
    data = read_coco_json(ann_path)
    remap_categories(data)
    return data, images_dir


def read_coco(root: Path, split: str, images_dir: Path | None, spec: DatasetSpec) -> tuple[dict, Path]:
    """The registry's reader for ``coco``."""
    return load_coco(root, split, images_dir, spec.annotation_file)
