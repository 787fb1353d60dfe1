"""``DetectionDataset``: images and detection targets from an in-memory COCO dict."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

import torch
from pycocotools.coco import COCO

from mar_core.annotations.coco import remap_categories
from mar_core.annotations.validate import ValidationReport, check_structure, validate_dataset
from mar_core.data.image_tensor import read_image_tensor
from mar_core.errors import BadImageError

log = logging.getLogger(__name__)


def build_coco(data: dict) -> COCO:
    """A ``pycocotools`` COCO index over ``data`` without touching disk (its prints silenced)."""
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


class DetectionDataset(torch.utils.data.Dataset):
    """A detection split. ``ds[i] -> (image, target)``:

    - ``image``: ``3 x H x W`` in [0, 1], RGB, in torch's default dtype (float32 unless set otherwise);
    - ``target``: ``boxes`` float32 ``N x 4`` (xyxy, absolute pixels), ``labels`` int64 ``N``
      in 1..K (0 is the background), ``image_id`` int (the COCO image id).

    The dict (owned by the dataset from then on, changed in place) is validated on construction
    (``validate_dataset``: missing files raise ``DatasetError``, files whose header cannot be
    read ``BadImageError`` or, with ``on_bad_image="skip"``, are left out; boxes are clipped or
    dropped, see ``.validation``) and its categories remapped to 1..K. Images are read by
    ``mar_core.image_io.load_rgb`` (EXIF orientation applied, any mode to RGB, a truncated file
    repaired), as the dataset check read them. A file that breaks later (changed on disk) raises
    ``BadImageError`` naming it, or under "skip" is replaced by the next readable image of the
    split and counted in ``.skipped_at_load`` (of this process). Crowd / VOC-difficult annotations
    stay in ``.coco`` with ``iscrowd=1`` (COCOeval ignores them) and are left out of the
    training targets.

    Attributes: ``coco`` (pycocotools COCO, category ids 1..K), ``class_names`` (label k is
    ``class_names[k-1]``), ``num_classes`` (K + 1, background included), ``validation``
    (``ValidationReport``), ``images_dir``, ``name``.
    """

    def __init__(
        self,
        data: dict,
        images_dir: str | Path,
        name: str = "dataset",
        verify_sizes: bool = True,
        on_bad_image: str = "refuse",
    ):
        check_structure(data, name)
        remap_categories(data)
        self.name = name
        self.images_dir = Path(images_dir)
        self.on_bad_image = on_bad_image
        self.skipped_at_load: set[str] = set()
        self.validation: ValidationReport = validate_dataset(
            data, self.images_dir, name, verify_sizes, on_bad_image
        )
        data.setdefault("info", {"description": name})
        data.setdefault("licenses", [])
        for ann in data["annotations"]:
            ann.pop("segmentation", None)  # bbox-only: keeps memory small, COCOeval(bbox) ignores it
        self.coco = build_coco(data)
        cats = data["categories"]
        self.class_names: list[str] = [str(c.get("name", c["id"])) for c in cats]
        self.num_classes = len(cats) + 1
        self._images: list[dict[str, Any]] = list(data["images"])
        self._boxes, self._labels = self._index_targets(data)

    def _index_targets(self, data: dict) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per image: non-crowd boxes (float32 N x 4, xyxy) and labels (int64 N)."""
        position = {img["id"]: i for i, img in enumerate(self._images)}
        boxes: list[list[list[float]]] = [[] for _ in self._images]
        labels: list[list[int]] = [[] for _ in self._images]
        for ann in data["annotations"]:
            if ann["iscrowd"]:
                continue
            x, y, w, h = ann["bbox"]
            i = position[ann["image_id"]]
            boxes[i].append([x, y, x + w, y + h])
            labels[i].append(ann["category_id"])
        return (
            [torch.tensor(b, dtype=torch.float32).reshape(-1, 4) for b in boxes],
            [torch.tensor(lab, dtype=torch.int64) for lab in labels],
        )

    def __len__(self) -> int:
        return len(self._images)

    def image_info(self, index: int) -> dict[str, Any]:
        """The COCO image record (``id``, ``file_name``, ``width``, ``height``)."""
        return self._images[index]

    def image_path(self, index: int) -> Path:
        return self.images_dir / self._images[index]["file_name"]

    def get_target(self, index: int) -> dict[str, Any]:
        """The target of image ``index`` without reading the image."""
        return {
            "boxes": self._boxes[index].clone(),
            "labels": self._labels[index].clone(),
            "image_id": int(self._images[index]["id"]),
        }

    def load_image(self, index: int) -> torch.Tensor:
        """``3 x H x W`` in [0, 1], in torch's default dtype (float32 unless set otherwise), as
        displayed (EXIF orientation applied); ``BadImageError`` naming the file."""
        path = self.image_path(index)
        try:
            return read_image_tensor(path)
        except BadImageError as e:
            raise BadImageError(f"{self.name}: {e.message}") from None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        for i in (*range(index, len(self)), *range(index)):
            try:
                return self.load_image(i), self.get_target(i)
            except BadImageError as e:
                if self.on_bad_image != "skip":
                    raise
                if str(self.image_path(i)) not in self.skipped_at_load:
                    self.skipped_at_load.add(str(self.image_path(i)))
                    log.warning("%s (skipped: on_bad_image is skip)", e.message)
        raise BadImageError(f"{self.name}: no image of the split can be read")

    def __repr__(self) -> str:
        return f"DetectionDataset({self.name!r}, images={len(self)}, classes={self.class_names})"
