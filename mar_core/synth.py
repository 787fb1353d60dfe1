"""Deterministic synthetic shapes in COCO layout: the demo's and the tests' dataset.

``generate_synthetic(out_dir, seed)`` writes ``annotations/instances_{train,val}.json`` and
``{train,val}/NNNNNN.png``. Each image: a textured background (gradient + low-frequency noise),
unlabelled clutter (thin strokes, lumpy blobs, low contrast, drawn under the objects), then
1..``max_objects`` filled shapes of ``SHAPES`` in random, class-independent colours. Objects may
overlap; draw order decides what is visible and the box is the full object extent. A placement
that would leave an earlier object less than ``MIN_VISIBLE`` visible is retried, then skipped.
Sizes are log-uniform from ``min_object_size`` to 0.9 x ``image_size``, so COCO's small /
medium / large buckets (area < 32^2, < 96^2, >= 96^2) all occur (large ones rarely at 128 px).

Image ``i`` of a split depends only on ``(seed, split, i)`` (numpy ``Generator``, PIL drawing,
no clock): the same seed gives byte-identical files.

Torch-free (numpy and PIL), so it lives beside ``mar_core.data`` (whose package imports torch):
``mar demo`` writes its set without loading torch. ``mar_core.data`` re-exports it.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from mar_core.errors import DatasetError

log = logging.getLogger(__name__)

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond", "star")
SPLITS = ("train", "val")
MIN_VISIBLE = 0.3  # an object more than 70% hidden is not placed
_TRIES = 8  # placements tried per object
_SMALL, _LARGE = 32**2, 96**2


@dataclass(frozen=True)
class _Obj:
    label: int  # 1..K
    mask: np.ndarray  # bool H x W, full extent
    box: tuple[int, int, int, int]  # x, y, w, h (tight around mask)
    colour: np.ndarray  # float 3


def _shape_mask(shape: str, x0: float, y0: float, w: float, h: float, size: tuple[int, int]) -> np.ndarray:
    """bool ``H x W``: ``shape`` filling the box ``(x0, y0, w, h)``."""
    im = Image.new("L", size, 0)
    d = ImageDraw.Draw(im)
    x1, y1 = x0 + w - 1, y0 + h - 1
    cx, cy = x0 + (w - 1) / 2, y0 + (h - 1) / 2
    if shape == "circle":
        d.ellipse([x0, y0, x1, y1], fill=255)
    elif shape == "square":
        d.rectangle([x0, y0, x1, y1], fill=255)
    elif shape == "triangle":
        d.polygon([(x0, y1), (cx, y0), (x1, y1)], fill=255)
    elif shape == "cross":
        tx, ty = max(1.0, 0.17 * w), max(1.0, 0.17 * h)
        d.rectangle([x0, cy - ty, x1, cy + ty], fill=255)
        d.rectangle([cx - tx, y0, cx + tx, y1], fill=255)
    elif shape == "ring":
        t = max(2.0, 0.22 * min(w, h))
        d.ellipse([x0, y0, x1, y1], fill=255)
        d.ellipse([x0 + t, y0 + t, x1 - t, y1 - t], fill=0)
    elif shape == "diamond":
        d.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=255)
    elif shape == "star":
        rx, ry = (w - 1) / 2, (h - 1) / 2
        pts = []
        for k in range(10):
            r = 1.0 if k % 2 == 0 else 0.42
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + r * rx * math.cos(a), cy + r * ry * math.sin(a)))
        d.polygon(pts, fill=255)
    else:  # pragma: no cover - SHAPES is closed
        raise ValueError(f"unknown shape {shape!r}")
    return np.asarray(im) > 0


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = mask.any(axis=1), mask.any(axis=0)
    if not rows.any():
        return None
    y0, y1 = int(rows.argmax()), len(rows) - int(rows[::-1].argmax())
    x0, x1 = int(cols.argmax()), len(cols) - int(cols[::-1].argmax())
    return x0, y0, x1 - x0, y1 - y0


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Whether two ``(x, y, w, h)`` boxes intersect."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """float ``H x W x 3``: two-colour gradient plus low-frequency colour noise."""
    base = rng.uniform(40, 215, 3)
    c0, c1 = base + rng.normal(0, 25, 3), base + rng.normal(0, 25, 3)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(1, size - 1)
    t = np.clip(0.5 + (xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle), 0, 1)[..., None]
    img = c0 * (1 - t) + c1 * t
    cells = int(rng.integers(3, 7))
    low = Image.fromarray(rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8), "RGB")
    low = np.asarray(low.resize((size, size), Image.BILINEAR), dtype=np.float32)
    return img + (low - 127.5) * (rng.uniform(10, 30) / 127.5)


def _clutter(rng: np.random.Generator, img: np.ndarray, count: int) -> None:
    """Draw ``count`` unlabelled low-contrast strokes and lumpy blobs into ``img`` (in place)."""
    size = img.shape[0]
    for _ in range(count):
        mask_im = Image.new("L", (size, size), 0)
        d = ImageDraw.Draw(mask_im)
        cx, cy = rng.uniform(0, size, 2)
        spread = rng.uniform(0.08, 0.3) * size
        if rng.random() < 0.6:  # stroke: a thin polyline
            pts = [(float(cx), float(cy))]
            for _ in range(int(rng.integers(2, 5))):
                cx, cy = cx + rng.normal(0, spread / 2), cy + rng.normal(0, spread / 2)
                pts.append((float(cx), float(cy)))
            d.line(pts, fill=255, width=int(rng.integers(1, 3)))
        else:  # blob: a few overlapping small discs
            for _ in range(int(rng.integers(3, 6))):
                r = rng.uniform(1.5, max(2.0, size / 40))
                px, py = cx + rng.normal(0, r), cy + rng.normal(0, r)
                d.ellipse([px - r, py - r, px + r, py + r], fill=255)
        mask = np.asarray(mask_im) > 0
        if mask.any():
            mean = img[mask].mean(axis=0)
            colour = mean + rng.uniform(0.3, 0.55) * (rng.uniform(0, 255, 3) - mean)
            img[mask] = colour


def _pick_colour(rng: np.random.Generator, avoid: list[np.ndarray], bg: np.ndarray) -> np.ndarray:
    """A random colour far from the local background and from the objects it may touch."""
    best, best_score = 255.0 - bg, -1.0
    for _ in range(16):
        c = rng.uniform(0, 255, 3)
        score = min([np.linalg.norm(c - bg) / 110.0] + [np.linalg.norm(c - a) / 70.0 for a in avoid])
        if score >= 1.0:
            return c
        if score > best_score:
            best, best_score = c, score
    return best


def _render_image(
    rng: np.random.Generator, size: int, num_classes: int, max_objects: int, min_object_size: int
) -> tuple[np.ndarray, list[_Obj]]:
    """uint8 ``H x W x 3`` image and its objects, drawn bottom to top."""
    img = _background(rng, size)
    scale = size / 128
    _clutter(rng, img, int(rng.integers(1, max(2, round(5 * scale)) + 1)))
    n = int(rng.integers(1, max_objects + 1))
    lo, hi = math.log(min_object_size), math.log(max(min_object_size + 1, 0.9 * size))
    sides = np.exp(rng.uniform(lo, hi, n))
    order = np.argsort(-sides * rng.uniform(0.6, 1.4, n), kind="stable")  # mostly big first
    top = np.zeros((size, size), dtype=np.int32)  # 0 = background, j + 1 = objects[j]
    objects: list[_Obj] = []
    full_areas: list[int] = []
    for side in sides[order]:
        label = int(rng.integers(1, num_classes + 1))
        aspect = math.exp(rng.uniform(-0.2, 0.2))
        w = int(np.clip(round(side * math.sqrt(aspect)), min_object_size, size))
        h = int(np.clip(round(side / math.sqrt(aspect)), min_object_size, size))
        for _ in range(_TRIES):
            x0, y0 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
            mask = _shape_mask(SHAPES[label - 1], x0, y0, w, h, (size, size))
            if objects:
                visible = np.bincount(top[~mask], minlength=len(objects) + 1)[1:]
                if (visible < MIN_VISIBLE * np.asarray(full_areas)).any():
                    continue
            box = _tight_box(mask)
            if box is None:
                continue
            touching = [o.colour for o in objects if _overlap(o.box, (x0, y0, w, h))]
            colour = _pick_colour(rng, touching, img[mask].mean(axis=0))
            img[mask] = colour
            top[mask] = len(objects) + 1
            objects.append(_Obj(label, mask, box, colour))
            full_areas.append(int(mask.sum()))
            break
    img += rng.normal(0, 4.0, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), objects


def _check_args(
    num_train: int,
    num_val: int,
    image_size: int,
    num_classes: int,
    max_objects: int,
    min_object_size: int,
    seed: int,
) -> None:
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if num_train < 1 or num_val < 1:
        raise ValueError(f"num_train and num_val must be >= 1, got {num_train}, {num_val}")
    if not 32 <= image_size <= 2048:
        raise ValueError(f"image_size must be in 32..2048, got {image_size}")
    if not 1 <= num_classes <= len(SHAPES):
        raise ValueError(f"num_classes must be in 1..{len(SHAPES)} ({', '.join(SHAPES)}), got {num_classes}")
    if max_objects < 1:
        raise ValueError(f"max_objects must be >= 1, got {max_objects}")
    if not 4 <= min_object_size <= image_size // 2:
        raise ValueError(f"min_object_size must be in 4..{image_size // 2}, got {min_object_size}")


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    owned = [out / "annotations" / f"instances_{s}.json" for s in SPLITS]
    existing = [p for p in owned if p.exists()] + [p for s in SPLITS for p in sorted((out / s).glob("*.png"))]
    if existing and not overwrite:
        raise DatasetError(
            f"{out} already holds a dataset ({existing[0]}); pass overwrite=True (--overwrite)", param="out"
        )
    for p in existing:
        p.unlink()
    for sub in ("annotations", *SPLITS):
        (out / sub).mkdir(parents=True, exist_ok=True)


def generate_synthetic(
    out_dir: str | Path,
    seed: int = 0,
    num_train: int = 400,
    num_val: int = 100,
    image_size: int = 128,
    num_classes: int = 6,
    max_objects: int | None = None,
    min_object_size: int = 10,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the synthetic shapes dataset to ``out_dir`` (COCO layout) and return a summary.

    ``num_classes`` takes the first K of ``SHAPES``; ``max_objects`` defaults to
    ``round(6 * image_size / 128)``. An existing dataset in ``out_dir`` is replaced only with
    ``overwrite`` (its PNGs and annotation files are deleted first), else ``DatasetError``.
    Summary: ``{"out_dir", "seed", "image_size", "class_names", "splits": {split: {"images",
    "boxes", "small", "medium", "large"}}}``.
    """
    max_objects = max_objects if max_objects is not None else max(1, round(6 * image_size / 128))
    _check_args(num_train, num_val, image_size, num_classes, max_objects, min_object_size, seed)
    out = Path(out_dir)
    _prepare_out_dir(out, overwrite)
    names = list(SHAPES[:num_classes])
    summary: dict[str, Any] = {
        "out_dir": str(out),
        "seed": seed,
        "image_size": image_size,
        "class_names": names,
        "splits": {},
    }
    for split_code, (split, count) in enumerate(zip(SPLITS, (num_train, num_val))):
        images, annotations = [], []
        buckets = {"small": 0, "medium": 0, "large": 0}
        for i in range(count):
            rng = np.random.default_rng([seed, split_code, i])
            pixels, objects = _render_image(rng, image_size, num_classes, max_objects, min_object_size)
            file_name = f"{i:06d}.png"
            Image.fromarray(pixels, "RGB").save(out / split / file_name, format="PNG", compress_level=1)
            images.append({"id": i + 1, "file_name": file_name, "width": image_size, "height": image_size})
            for o in objects:
                area = o.box[2] * o.box[3]
                buckets["small" if area < _SMALL else "medium" if area < _LARGE else "large"] += 1
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": i + 1,
                        "category_id": o.label,
                        "bbox": list(o.box),
                        "area": area,
                        "iscrowd": 0,
                    }
                )
        data = {
            "info": {"description": "MAR synthetic shapes", "version": "1", "seed": seed, "split": split},
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": [
                {"id": k, "name": n, "supercategory": "shape"} for k, n in enumerate(names, start=1)
            ],
        }
        with open(out / "annotations" / f"instances_{split}.json", "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"))
        summary["splits"][split] = {"images": count, "boxes": len(annotations), **buckets}
        log.info(
            "synthetic %s: %d images, %d boxes (small %d, medium %d, large %d)",
            split,
            count,
            len(annotations),
            buckets["small"],
            buckets["medium"],
            buckets["large"],
        )
    return summary
