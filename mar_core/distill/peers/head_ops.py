"""Shared pieces of the losses that read one-stage detection heads (``logit_kd``, ``crosskd``).

RetinaNet and FCOS heads (torchvision) have a ``classification_head`` and a ``regression_head``,
each a ``conv`` tower (conv, GroupNorm, ReLU blocks) then ``cls_logits`` (``A K`` channels: ``A``
anchors per location, ``K`` classes) or ``bbox_reg`` (``A 4`` channels).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "bernoulli_kl",
    "per_anchor",
    "soft_positives",
    "split_tower",
]


def per_anchor(pred: Tensor, num_anchors: int) -> Tensor:
    """``B x (A D) x H x W`` -> ``B x A x D x H x W`` (torchvision's channel order)."""
    b, c, h, w = pred.shape
    return pred.reshape(b, num_anchors, c // num_anchors, h, w)


def soft_positives(teacher_logits: Sequence[Tensor], num_anchors: int, temperature: float = 1.0) -> Tensor:
    """The normaliser of the head losses: ``max(1, sum over levels and anchors of the teacher's
    highest class probability)``, a soft count of the positive anchors (the official CrossKD
    divides by the count of anchors assigned to a box)."""
    total = sum(
        torch.sigmoid(per_anchor(t.detach().float(), num_anchors) / temperature).amax(2).sum()
        for t in teacher_logits
    )
    return torch.as_tensor(total).clamp(min=1.0)


def bernoulli_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Elementwise ``KL(Bern(p_T) || Bern(p_S))`` with ``p = sigmoid(logit / T)``: the sigmoid
    BCE against the teacher's soft targets minus its (constant) entropy, so 0 when they agree."""
    s, t = student_logits.float() / temperature, teacher_logits.detach().float() / temperature
    p_t = torch.sigmoid(t)
    bce = F.binary_cross_entropy_with_logits(s, p_t, reduction="none")
    entropy = F.binary_cross_entropy_with_logits(t, p_t, reduction="none")
    return bce - entropy


def split_tower(tower: nn.Module, index: int) -> tuple[nn.Sequential, nn.Sequential]:
    """Cut a head tower (``conv`` of a head: conv, norm, ReLU blocks, nested or flat) before the
    activation of its ``index``-th block (1-based); ``index = 0``: nothing before. Returns the
    first part (its output is the ``index``-th block's pre-activation) and the rest (that
    activation, the later blocks). ReLUs are run out of place, so a hooked output stays intact."""
    leaves = [m for m in tower.modules() if not list(m.children())]
    acts = [i for i, m in enumerate(leaves) if isinstance(m, nn.ReLU)]
    if not 0 <= index <= len(acts):
        raise ValueError(f"tower has {len(acts)} blocks; cannot cut at block {index}")
    cut = 0 if index == 0 else acts[index - 1]
    leaves = [nn.ReLU() if isinstance(m, nn.ReLU) else m for m in leaves]
    return nn.Sequential(*leaves[:cut]), nn.Sequential(*leaves[cut:])
