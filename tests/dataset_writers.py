"""Tiny datasets on disk in every layout the readers take, from one description (torch-free:
the API tests use them too).

Each split holds ``n`` images (PNG, 32..64 px) with the same deterministic boxes, so every layout
of the same ``n`` describes the same data: ``expected(split, n)`` is what a reader must return.
Writers return the dataset folder; tests break a file afterwards to check an error.

    write_coco(root, layout="coco" | "roboflow" | "cvat")
    write_voc(root)
    write_yolo(root, names_as_dict=False, layout="images-first" | "split-first")
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import yaml
from PIL import Image

CLASSES = ("cat", "dog", "bird")
SPLITS = ("train", "val")
_SIZES = ((64, 48), (50, 40), (32, 32), (64, 64))


@dataclass(frozen=True)
class Box:
    """Class index (0-based into ``CLASSES``) and a 0-based pixel box ``x, y, w, h``."""

    cls: int
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class Img:
    stem: str
    width: int
    height: int
    boxes: tuple[Box, ...]

    @property
    def file_name(self) -> str:
        return f"{self.stem}.png"


def expected(split: str, n: int = 3) -> list[Img]:
    """The images of ``split``: image ``i`` has ``i % 3`` boxes (so one image has none), every
    class occurs when ``n >= 3``."""
    out = []
    for i in range(n):
        w, h = _SIZES[i % len(_SIZES)]
        boxes = tuple(Box((i + k) % len(CLASSES), 2 + 3 * k, 1 + 2 * k, 12 + k, 10) for k in range(i % 3))
        if i == 2:
            boxes = (*boxes, Box(2, 3, 4, 8, 8))
        out.append(Img(f"{split}_{i}", w, h, boxes))
    return out


def write_images(folder: Path, images: list[Img]) -> None:
    """One plain PNG per image, its colour from its name (no two images share their bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        colour = (40 * i % 255, zlib.crc32(img.stem.encode()) % 256, 200)
        Image.new("RGB", (img.width, img.height), colour).save(folder / img.file_name)


def coco_dict(images: list[Img], first_id: int = 1) -> dict:
    """The COCO dict of ``images``: category ids 1..K, image ids from ``first_id``."""
    anns = []
    for i, img in enumerate(images):
        for b in img.boxes:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": first_id + i,
                    "category_id": b.cls + 1,
                    "bbox": [b.x, b.y, b.w, b.h],
                    "area": b.w * b.h,
                    "iscrowd": 0,
                }
            )
    return {
        "images": [
            {"id": first_id + i, "file_name": img.file_name, "width": img.width, "height": img.height}
            for i, img in enumerate(images)
        ],
        "annotations": anns,
        "categories": [{"id": k, "name": n, "supercategory": "none"} for k, n in enumerate(CLASSES, start=1)],
    }


def write_coco(root: Path, layout: str = "coco", splits: tuple[str, ...] = SPLITS, n: int = 3) -> Path:
    """``coco``: ``annotations/instances_{split}.json``, images in ``{split}/``; ``roboflow``:
    ``{split}/_annotations.coco.json`` beside the images, ``val`` named ``valid``; ``cvat``:
    ``annotations/instances_{split}.json``, every split's images in ``images/``."""
    root = Path(root)
    for split in splits:
        images = expected(split, n)
        data = coco_dict(images)
        if layout == "roboflow":
            folder = root / ("valid" if split == "val" else split)
            ann = folder / "_annotations.coco.json"
        else:
            folder = root / ("images" if layout == "cvat" else split)
            ann = root / "annotations" / f"instances_{split}.json"
        write_images(folder, images)
        ann.parent.mkdir(parents=True, exist_ok=True)
        ann.write_text(json.dumps(data))
    return root


def write_voc(root: Path, splits: tuple[str, ...] = SPLITS, n: int = 3) -> Path:
    """``Annotations/*.xml`` (1-based inclusive corners), ``JPEGImages/``, ``ImageSets/Main/{split}.txt``."""
    root = Path(root)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for split in splits:
        images = expected(split, n)
        write_images(root / "JPEGImages", images)
        for img in images:
            objects = "".join(
                f"<object><name>{CLASSES[b.cls]}</name><difficult>0</difficult><bndbox>"
                f"<xmin>{b.x + 1}</xmin><ymin>{b.y + 1}</ymin><xmax>{b.x + b.w}</xmax><ymax>{b.y + b.h}</ymax>"
                "</bndbox></object>"
                for b in img.boxes
            )
            (root / "Annotations" / f"{img.stem}.xml").write_text(
                f"<annotation><filename>{img.file_name}</filename><size><width>{img.width}</width>"
                f"<height>{img.height}</height><depth>3</depth></size>{objects}</annotation>"
            )
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i.stem}\n" for i in images))
    return root


def yolo_line(b: Box, img: Img) -> str:
    cx, cy = (b.x + b.w / 2) / img.width, (b.y + b.h / 2) / img.height
    return f"{b.cls} {cx:.6f} {cy:.6f} {b.w / img.width:.6f} {b.h / img.height:.6f}"


def write_yolo(
    root: Path,
    splits: tuple[str, ...] = SPLITS,
    n: int = 3,
    names_as_dict: bool = False,
    layout: str = "images-first",
) -> Path:
    """``data.yaml`` and, per split, ``images/{split}`` + ``labels/{split}`` (``images-first``,
    Ultralytics' own) or ``{split}/images`` + ``{split}/labels`` (``split-first``, Roboflow's).
    An image without boxes gets no label file."""
    root = Path(root)
    entries = {}
    for split in splits:
        rel = f"images/{split}" if layout == "images-first" else f"{split}/images"
        entries[split] = rel
        images = expected(split, n)
        write_images(root / rel, images)
        labels = root / rel.replace("images", "labels")
        labels.mkdir(parents=True, exist_ok=True)
        for img in images:
            if img.boxes:
                text = "".join(yolo_line(b, img) + "\n" for b in img.boxes)
                (labels / f"{img.stem}.txt").write_text(text)
    names = dict(enumerate(CLASSES)) if names_as_dict else list(CLASSES)
    (root / "data.yaml").write_text(yaml.safe_dump({"path": ".", **entries, "names": names}))
    return root
