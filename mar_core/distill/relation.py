"""Relation loss between feature pixels (``docs/mar-method.md`` section 3).

Per image and level, ``X`` is ``C x N`` (``N = H W``) with every column L2-normalised and
``R = X^T X`` the ``N x N`` pixel-to-pixel cosine matrix. The loss
``||R_S - R_T||_F^2 / N^2`` is computed without any ``N x N`` matrix through

    ||R_S - R_T||_F^2 = ||X_S X_S^T||_F^2 - 2 ||X_S X_T^T||_F^2 + ||X_T X_T^T||_F^2

(three Gram matrices, ``C_s x C_s``, ``C_s x C_t`` and ``C_t x C_t``): ``O(N C^2)`` time and
``O(C^2)`` extra memory beyond the normalised copies of the features.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["relation_loss", "relation_loss_naive"]

_EPS = 1e-6


def _columns(feat: Tensor, weight: Tensor | None) -> Tensor:
    """``B x C x H x W`` -> ``B x C x N``, each column L2-normalised (eps 1e-6) in at least
    float32, then scaled by ``sqrt(weight)`` (``weight``: ``B x H x W``, detached)."""
    dtype = torch.promote_types(feat.dtype, torch.float32)
    x = F.normalize(feat.flatten(2).to(dtype), dim=1, eps=_EPS)
    if weight is not None:
        x = x * weight.detach().flatten(1).to(dtype).clamp(min=0).sqrt()[:, None, :]
    return x


def _check(student: Sequence[Tensor], teacher: Sequence[Tensor], weights: Sequence[Tensor] | None) -> None:
    if len(student) != len(teacher) or not student:
        raise ValueError(f"need the same, non-zero number of levels: {len(student)} vs {len(teacher)}")
    if weights is not None and len(weights) != len(student):
        raise ValueError(f"weights: {len(weights)} levels for {len(student)} feature levels")
    for lvl, (s, t) in enumerate(zip(student, teacher)):
        if s.dim() != 4 or s.shape[0] != t.shape[0] or s.shape[2:] != t.shape[2:]:
            raise ValueError(
                f"level {lvl}: student {tuple(s.shape)} and teacher {tuple(t.shape)} "
                "must be B x C x H x W with equal B, H, W"
            )
        if weights is not None and weights[lvl].shape != (s.shape[0], *s.shape[2:]):
            raise ValueError(f"level {lvl}: weight {tuple(weights[lvl].shape)} is not B x H x W")


def relation_loss(
    student: Sequence[Tensor], teacher: Sequence[Tensor], weights: Sequence[Tensor] | None = None
) -> Tensor:
    """Relation loss, a scalar averaged over images and levels.

    ``student[l]``: ``B x C_s x H_l x W_l``; ``teacher[l]``: ``B x C_t x H_l x W_l`` (detached
    here); ``weights[l]``: optional non-negative ``B x H_l x W_l`` (e.g. mask + floor) that
    weights pixel pair ``(i, j)`` by ``w_i w_j``. Grams accumulate in float32 (float64 inputs
    stay float64) with autocast disabled; the result is clamped at 0 against round-off.
    """
    _check(student, teacher, weights)
    per_level = []
    for lvl, (s, t) in enumerate(zip(student, teacher)):
        w = None if weights is None else weights[lvl]
        n = s.shape[2] * s.shape[3]
        with torch.autocast(device_type=s.device.type, enabled=False):
            xs = _columns(s, w)
            with torch.no_grad():
                xt = _columns(t.detach(), w)
                tt = torch.bmm(xt, xt.transpose(1, 2)).square().sum((1, 2))
            xt = xt.to(xs.dtype)
            ss = torch.bmm(xs, xs.transpose(1, 2)).square().sum((1, 2))
            st = torch.bmm(xs, xt.transpose(1, 2)).square().sum((1, 2))
            per_image = (ss - 2 * st + tt.to(xs.dtype)).clamp(min=0) / (n * n)
        per_level.append(per_image.mean())
    return torch.stack(per_level).mean()


def relation_loss_naive(
    student: Sequence[Tensor], teacher: Sequence[Tensor], weights: Sequence[Tensor] | None = None
) -> Tensor:
    """Reference with explicit ``N x N`` relation matrices (tests and benchmarks only; needs
    ``4 N^2`` bytes per matrix in float32). Same signature and value as ``relation_loss``."""
    _check(student, teacher, weights)
    per_level = []
    for lvl, (s, t) in enumerate(zip(student, teacher)):
        w = None if weights is None else weights[lvl]
        n = s.shape[2] * s.shape[3]
        xs, xt = _columns(s, w), _columns(t.detach(), w)
        rs = torch.bmm(xs.transpose(1, 2), xs)
        rt = torch.bmm(xt.transpose(1, 2), xt.to(xs.dtype))
        per_level.append(((rs - rt).square().sum((1, 2)) / (n * n)).mean())
    return torch.stack(per_level).mean()
