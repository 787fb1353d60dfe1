"""A deterministic COCO annotation file the size of COCO train2017 (118,287 images, 860,001
boxes, 80 categories with COCO's ids), written in chunks: the generator never holds it whole.

No image files: the file is for timing the annotation check. Boxes are COCO-like (a polygon of
the box's corners as ``segmentation``, ~1% crowd); a few reach outside their image (clipped)
or have no width (dropped), so the check's repair counts are exercised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mar_core.atomic import atomic_path

COCO_TRAIN2017 = {"images": 118_287, "boxes": 860_001}
CATEGORY_IDS = [i for i in range(1, 91) if i not in {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}]  # COCO's 80
SIZES = np.array([(640, 480), (640, 427), (480, 640), (500, 375), (640, 640), (427, 640)])
_CHUNK = 20_000


def _image_lines(rng: np.random.Generator, n: int) -> tuple[list[str], np.ndarray]:
    wh = SIZES[rng.integers(0, len(SIZES), n)]
    lines = [
        f'{{"license": 1, "file_name": "{i:012d}.jpg", "height": {h}, "width": {w}, '
        f'"date_captured": "2013-11-14 16:28:13", "id": {i}}}'
        for i, (w, h) in enumerate(wh.tolist(), start=1)
    ]
    return lines, wh


def _annotation_lines(
    rng: np.random.Generator, first_id: int, image_ids: np.ndarray, wh: np.ndarray
) -> list[str]:
    n = len(image_ids)
    size = wh[image_ids - 1].astype(float)
    w = np.round(size[:, 0] * rng.uniform(0.02, 0.6, n), 2)
    h = np.round(size[:, 1] * rng.uniform(0.02, 0.6, n), 2)
    x = np.round(rng.uniform(0, 1, n) * (size[:, 0] - w), 2)
    y = np.round(rng.uniform(0, 1, n) * (size[:, 1] - h), 2)
    x[rng.random(n) < 0.005] -= 5.0  # reaches outside: clipped
    w[rng.random(n) < 0.0005] = 0.0  # no width: dropped
    crowd = (rng.random(n) < 0.01).astype(int)
    cats = np.array(CATEGORY_IDS)[rng.integers(0, len(CATEGORY_IDS), n)]
    out = []
    for k in range(n):
        x0, y0, bw, bh = x[k], y[k], w[k], h[k]
        x1, y1 = round(x0 + bw, 2), round(y0 + bh, 2)
        out.append(
            f'{{"segmentation": [[{x0}, {y0}, {x1}, {y0}, {x1}, {y1}, {x0}, {y1}]], '
            f'"area": {round(bw * bh * 0.6, 2)}, "iscrowd": {crowd[k]}, "image_id": {image_ids[k]}, '
            f'"bbox": [{x0}, {y0}, {bw}, {bh}], "category_id": {cats[k]}, "id": {first_id + k}}}'
        )
    return out


def write_coco_file(path: Path, images: int, boxes: int, seed: int = 0) -> Path:
    """Write the file (atomically); the same arguments give the same bytes."""
    rng = np.random.default_rng(seed)
    image_lines, wh = _image_lines(rng, images)
    owners = np.sort(rng.integers(1, images + 1, boxes))
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write('{"info": {"description": "generated, COCO train2017-sized"}, "licenses": [], "images": [\n')
        f.write(",\n".join(image_lines))
        f.write('\n], "annotations": [\n')
        for start in range(0, boxes, _CHUNK):
            chunk = _annotation_lines(rng, start + 1, owners[start : start + _CHUNK], wh)
            f.write((",\n" if start else "") + ",\n".join(chunk))
        cats = ", ".join(f'{{"supercategory": "thing", "id": {c}, "name": "class{c}"}}' for c in CATEGORY_IDS)
        f.write(f'\n], "categories": [{cats}]}}\n')
    return path
