"""Mask-guided feature loss (``docs/mar-method.md`` section 2).

With ``D = mean over channels of (F_T - F_S)^2`` (``B x H x W``) and the multi-value mask ``M``:

    L_fg = mean over levels of sum(M * D) / max(1, sum(M))
    L_bg = mean over levels of sum(1[M == 0] * D) / max(1, count(M == 0))

Each term is normalised by its own mass over the whole batch of a level, which is what answers
the foreground / background imbalance.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["mask_guided_feature_loss", "resize_to"]


def resize_to(teacher_feat: Tensor, student_hw: tuple[int, int] | torch.Size) -> Tensor:
    """Bilinear resize of ``B x C x H_t x W_t`` to ``B x C x H_s x W_s`` (identity when equal)."""
    hw = (int(student_hw[0]), int(student_hw[1]))
    if tuple(teacher_feat.shape[-2:]) == hw:
        return teacher_feat
    return F.interpolate(teacher_feat, size=hw, mode="bilinear", align_corners=False)


def mask_guided_feature_loss(
    student: Sequence[Tensor], teacher: Sequence[Tensor], masks: Sequence[Tensor]
) -> dict[str, Tensor]:
    """``{"fg": scalar, "bg": scalar}`` in float32.

    ``student[l]`` (already adapted to the teacher's channels) and ``teacher[l]``:
    ``B x C x H_l x W_l``; the teacher is detached here. ``masks[l]``: ``B x H_l x W_l``.
    """
    if not (len(student) == len(teacher) == len(masks)) or not student:
        raise ValueError(
            f"need the same, non-zero number of levels: {len(student)} student, "
            f"{len(teacher)} teacher, {len(masks)} masks"
        )
    fg, bg = [], []
    for lvl, (s, t, m) in enumerate(zip(student, teacher, masks)):
        if s.shape != t.shape or m.shape != (s.shape[0], *s.shape[2:]):
            raise ValueError(
                f"level {lvl}: student {tuple(s.shape)}, teacher {tuple(t.shape)}, "
                f"mask {tuple(m.shape)}; need equal B x C x H x W and a B x H x W mask"
            )
        dist = (t.detach().float() - s.float()).square().mean(1)
        m = m.detach().float()
        is_bg = (m == 0).float()
        fg.append((m * dist).sum() / m.sum().clamp(min=1))
        bg.append((is_bg * dist).sum() / is_bg.sum().clamp(min=1))
    return {"fg": torch.stack(fg).mean(), "bg": torch.stack(bg).mean()}
