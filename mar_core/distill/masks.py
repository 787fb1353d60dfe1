"""Box masks on a feature grid (``docs/mar-method.md`` section 1), vectorised over all boxes.

Conventions shared by every function here:

* ``boxes``: one float tensor ``N_i x 4`` per image, ``(x1, y1, x2, y2)`` in pixels of the padded
  batch (``ImageList.tensors``); ``feat_size = (H, W)``; ``stride = (sy, sx)`` with
  ``sy = padded_height / H``. Cell ``(i, j)`` has its centre at ``((j + .5) sx, (i + .5) sy)``.
* A cell is in a box (scaled by ``kappa`` about its centre) when its centre lies in the closed
  box. Along each axis, the row / column holding the box centre always counts as inside the
  core: a box smaller than a cell marks the cell holding its centre, and a box thinner than a
  cell (a pole at a coarse level) marks the cells its centre line crosses. For a box that covers
  a cell centre along an axis this changes nothing (that row / column is already inside).
* Gaussian mode follows the same per-axis rule (factor 1 on the row / column holding the
  centre) and uses at least one cell as the box width / height.
* Rings are products of an interval in y and one in x, so every per-box map is an outer
  ``min`` / product of a ``H`` vector and a ``W`` vector; boxes are reduced into images with
  ``index_reduce_(amax)``, in chunks of at most ``_CHUNK_ELEMS`` elements.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["inverse_area_mask", "multi_value_mask"]

_CHUNK_ELEMS = 64 * 1024 * 1024
_GAUSSIAN_CUT = 0.01


def _concat_boxes(boxes: Sequence[Tensor]) -> tuple[Tensor, Tensor, torch.device]:
    """All boxes of the batch as ``(M, 4)`` float64 with their image index ``(M,)``."""
    device = boxes[0].device if len(boxes) else torch.device("cpu")
    flat = [b.reshape(-1, 4).to(device=device, dtype=torch.float64) for b in boxes]
    img = [torch.full((len(b),), i, dtype=torch.long, device=device) for i, b in enumerate(flat)]
    if not flat:
        return torch.zeros(0, 4, dtype=torch.float64), torch.zeros(0, dtype=torch.long), device
    return torch.cat(flat), torch.cat(img), device


def _axis_geometry(lo: Tensor, hi: Tensor, size: int, step: float) -> tuple[Tensor, Tensor, Tensor]:
    """For M intervals ``[lo, hi]`` (pixels) on an axis of ``size`` cells of ``step`` pixels:
    ``|offset|`` of each cell centre from the interval centre ``(M, size)``, the half-length
    ``(M, 1)`` and a boolean ``(M, size)`` that is True on the cell holding the centre."""
    centre = (lo + hi) / 2
    half = ((hi - lo) / 2).clamp(min=0)[:, None]
    pos = (torch.arange(size, dtype=lo.dtype, device=lo.device) + 0.5) * step
    dist = (pos[None, :] - centre[:, None]).abs()
    home = (centre / step).floor().clamp(0, size - 1).long()
    is_home = torch.zeros_like(dist, dtype=torch.bool)
    is_home[torch.arange(len(lo), device=lo.device), home] = True
    return dist, half, is_home


def _ring_profile(
    dist: Tensor, half: Tensor, is_home: Tensor, kappas: Sequence[float], values: Sequence[float]
) -> Tensor:
    """Per-axis ring value ``(M, size)``: ``v_k`` for the smallest ``k`` with
    ``dist <= kappa_k * half`` (``v_0`` on the home cell), 0 outside every ring."""
    prof = torch.zeros_like(dist)
    for kappa, value in reversed(list(zip(kappas, values))):  # smallest ring written last
        prof = torch.where(dist <= kappa * half, torch.full_like(dist, value), prof)
    return torch.where(is_home, torch.full_like(dist, values[0]), prof)


def _core_areas(xyxy: Tensor, sy: float, sx: float) -> Tensor:
    """Core area of every box in cells of this level, ``(M,)``."""
    w = (xyxy[:, 2] - xyxy[:, 0]).clamp(min=0) / sx
    h = (xyxy[:, 3] - xyxy[:, 1]).clamp(min=0) / sy
    return w * h


def _reduce_outer(
    py: Tensor, px: Tensor, img: Tensor, batch: int, *, op: str, scale: Tensor | None = None
) -> Tensor:
    """``out[b] = max over boxes m of image b of scale[m] * op(py[m, :, None], px[m, None, :])``.

    ``py``: ``(M, H)``, ``px``: ``(M, W)``, ``scale``: ``(M,)`` or None; ``op`` is ``"min"``
    (rings) or ``"gauss"`` (product, cut below 0.01 before scaling). Returns ``B x H x W``.
    """
    height, width = py.shape[1], px.shape[1]
    out = torch.zeros(batch, height, width, dtype=py.dtype, device=py.device)
    chunk = max(1, _CHUNK_ELEMS // max(1, height * width))
    for start in range(0, len(img), chunk):  # a single pass for any realistic batch
        sl = slice(start, start + chunk)
        a, b = py[sl, :, None], px[sl, None, :]
        if op == "min":
            per_box = torch.minimum(a, b)
        else:
            per_box = a * b
            per_box = per_box.masked_fill_(per_box < _GAUSSIAN_CUT, 0.0)
        if scale is not None:
            per_box.mul_(scale[sl, None, None])
        with warnings.catch_warnings():  # "index_reduce() is in beta"
            warnings.filterwarnings("ignore", message=".*index_reduce.*")
            out.index_reduce_(0, img[sl], per_box, "amax")
    return out


def multi_value_mask(
    boxes: Sequence[Tensor],
    feat_size: tuple[int, int],
    stride: tuple[float, float],
    *,
    kappas: Sequence[float] = (1.0, 1.5, 2.0),
    values: Sequence[float] = (1.0, 0.5, 0.25),
    mode: str = "rings",
    sigma: float = 0.5,
    scale_norm: bool = True,
) -> Tensor:
    """Multi-value mask of one level, ``B x H x W`` float32 on the boxes' device.

    ``mode="rings"``: ``v_k`` where the cell centre lies in the box scaled by ``kappa_k`` and in
    no smaller ring. ``mode="gaussian"``: ``exp(-((dx / (sigma w))^2 + (dy / (sigma h))^2) / 2)``
    (per axis, a product), with ``w, h`` at least one cell and the factor of the row / column
    holding the box centre set to 1 (the rings' rule: that cell gets the top value 1), values
    below 0.01 set to 0. Overlaps take the max. ``scale_norm`` multiplies a box's
    values by ``min(1, A_ref / A_g)``: ``A_g`` its core area in cells, ``A_ref`` the median
    (interpolated for an even count) over all boxes of the batch. No boxes: all zeros.
    """
    if len(kappas) != len(values) or not kappas:
        raise ValueError("kappas and values must have the same, non-zero length")
    if mode not in ("rings", "gaussian"):
        raise ValueError(f"unknown mask mode {mode!r}; valid: rings, gaussian")
    height, width = int(feat_size[0]), int(feat_size[1])
    sy, sx = float(stride[0]), float(stride[1])
    xyxy, img, device = _concat_boxes(boxes)
    if len(xyxy) == 0:
        return torch.zeros(len(boxes), height, width, device=device)

    dy, hy, home_y = _axis_geometry(xyxy[:, 1], xyxy[:, 3], height, sy)
    dx, hx, home_x = _axis_geometry(xyxy[:, 0], xyxy[:, 2], width, sx)
    if mode == "rings":
        py = _ring_profile(dy, hy, home_y, kappas, values)
        px = _ring_profile(dx, hx, home_x, kappas, values)
    else:
        py = torch.exp(-0.5 * (dy / (sigma * (2 * hy).clamp(min=sy))) ** 2).masked_fill_(home_y, 1.0)
        px = torch.exp(-0.5 * (dx / (sigma * (2 * hx).clamp(min=sx))) ** 2).masked_fill_(home_x, 1.0)
    scale = None
    if scale_norm:
        areas = _core_areas(xyxy, sy, sx)
        ref = torch.quantile(areas, 0.5)
        scale = torch.where(areas > ref, ref / areas.clamp(min=1e-12), torch.ones_like(areas)).float()
    op = "min" if mode == "rings" else "gauss"
    return _reduce_outer(py.float(), px.float(), img, len(boxes), op=op, scale=scale)


def inverse_area_mask(
    boxes: Sequence[Tensor], feat_size: tuple[int, int], stride: tuple[float, float]
) -> Tensor:
    """FGD's foreground mask, ``B x H x W`` float32: each cell of a box's core (same cell rule
    as ring 0 above) gets ``1 / (number of cells in that core)``, max over boxes; so each box
    carries a total weight of 1 whatever its size. No boxes: all zeros."""
    height, width = int(feat_size[0]), int(feat_size[1])
    sy, sx = float(stride[0]), float(stride[1])
    xyxy, img, device = _concat_boxes(boxes)
    if len(xyxy) == 0:
        return torch.zeros(len(boxes), height, width, device=device)
    dy, hy, home_y = _axis_geometry(xyxy[:, 1], xyxy[:, 3], height, sy)
    dx, hx, home_x = _axis_geometry(xyxy[:, 0], xyxy[:, 2], width, sx)
    py = ((dy <= hy) | home_y).float()
    px = ((dx <= hx) | home_x).float()
    inv_count = 1.0 / (py.sum(1) * px.sum(1))  # the core is a product set: rows x columns
    return _reduce_outer(py, px, img, len(boxes), op="min", scale=inv_count)
