"""Mask building: the vectorised ``multi_value_mask`` against a per-box Python loop.

The loop form computes the same rings (same cell rule, same ``scale_norm``) one box at a time;
both results are compared, so the timing is of two implementations of one function.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch

from mar_core.distill.masks import multi_value_mask


def mask_loop(
    boxes,
    feat_size: tuple[int, int],
    stride: tuple[float, float],
    kappas: Sequence[float] = (1.0, 1.5, 2.0),
    values: Sequence[float] = (1.0, 0.5, 0.25),
    scale_norm: bool = True,
):
    """Reference: ring masks built box by box in Python, ``B x H x W``."""

    height, width = feat_size
    sy, sx = stride
    out = torch.zeros(len(boxes), height, width)
    ys = (torch.arange(height, dtype=torch.float64) + 0.5) * sy
    xs = (torch.arange(width, dtype=torch.float64) + 0.5) * sx
    areas = [
        float((b[2] - b[0]).clamp(min=0) / sx * (b[3] - b[1]).clamp(min=0) / sy)
        for img in boxes
        for b in img.double()
    ]
    ref = float(torch.quantile(torch.tensor(areas, dtype=torch.float64), 0.5)) if areas else 0.0

    def profile(pos, lo, hi, size, step):
        centre, half = (lo + hi) / 2, max(0.0, (hi - lo) / 2)
        dist = (pos - centre).abs()
        prof = torch.zeros(size, dtype=torch.float64)
        for kappa, value in reversed(list(zip(kappas, values))):
            prof[dist <= kappa * half] = value
        prof[min(max(int(centre // step), 0), size - 1)] = values[0]
        return prof

    for b, img_boxes in enumerate(boxes):
        for box in img_boxes.double().tolist():
            x1, y1, x2, y2 = box
            py = profile(ys, y1, y2, height, sy)
            px = profile(xs, x1, x2, width, sx)
            m = torch.minimum(py[:, None], px[None, :])
            if scale_norm:
                area = (max(0.0, x2 - x1) / sx) * (max(0.0, y2 - y1) / sy)
                if area > ref:
                    m = m * (ref / max(area, 1e-12))
            out[b] = torch.maximum(out[b], m.float())
    return out


def _random_boxes(batch: int, per_image: int, image: tuple[int, int], seed: int):

    gen = torch.Generator().manual_seed(seed)
    h, w = image
    out = []
    for _ in range(batch):
        wh = torch.rand(per_image, 2, generator=gen) * torch.tensor([w * 0.5, h * 0.5]) + 4
        xy = torch.rand(per_image, 2, generator=gen) * (torch.tensor([w, h]) - wh)
        out.append(torch.cat([xy, xy + wh], dim=1))
    return out


def _time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def mask_perf_table(
    cases: Sequence[tuple[int, int, int]] = ((512, 5, 8), (512, 20, 8), (800, 100, 8)),
    stride: int = 8,
    repeats: int = 5,
) -> list[dict[str, Any]]:
    """One row per ``(image side, boxes per image, batch)``: median seconds of both forms on the
    level of ``stride``, their ratio and the largest difference between the two masks."""

    rows = []
    for side, per_image, batch in cases:
        boxes = _random_boxes(batch, per_image, (side, side), seed=side + per_image)
        feat = (side // stride, side // stride)
        st = (float(stride), float(stride))
        vec = multi_value_mask(boxes, feat, st)
        ref = mask_loop(boxes, feat, st)
        t_vec = _time(lambda b=boxes, f=feat, s=st: multi_value_mask(b, f, s), repeats)
        t_loop = _time(lambda b=boxes, f=feat, s=st: mask_loop(b, f, s), max(1, repeats // 2))
        rows.append(
            {
                "image_side": side,
                "feat": list(feat),
                "boxes_per_image": per_image,
                "batch": batch,
                "vectorised_s": round(t_vec, 6),
                "loop_s": round(t_loop, 6),
                "speedup": round(t_loop / max(t_vec, 1e-9), 2),
                "max_abs_diff": float((vec - ref).abs().max()),
            }
        )
    return rows
