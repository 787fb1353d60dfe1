"""CrossKD peer (Wang et al., CVPR 2024; official code jbwang1997/CrossKD), RetinaNet and FCOS.

Per level and tower (classification, regression) with ``k = reused_teacher_head_idx``:
``h_S``, the student's pre-activation after its first ``k`` tower blocks (``B x C_s x H x W``),
goes through a 1x1 adapter to the teacher's ``C_t`` (the identity when they match and
``adapter: auto``), is given the teacher's per-channel mean and std (``align``, as the official
``align_scale``), then runs through the teacher's remaining tower blocks and predictor (frozen:
the gradient reaches only the student). With ``p_T = sigmoid(teacher logits)`` and ``N`` the
soft count of positive anchors (``head_ops.soft_positives``):

    cls = cls_weight * sum BCE(z_x, p_T) |sigmoid(z_x) - p_T|^beta / N    (quality focal loss)
    box = box_weight * sum_anchors max_k p_T * |b_x - b_T|_1 / N

Deviations from the official code, which this harness has no place for: the box term is an L1
on the raw box outputs (RetinaNet deltas, FCOS's ReLU'd distances in stride units) where the
official decodes both with the anchors and takes a GIoU, and ``N`` is the teacher's soft
positive count where the official counts the anchors the assigner gave a box.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mar_core.distill.kd_loss import HeadInputs, KDLoss, adapter
from mar_core.distill.peers.head_ops import per_anchor, soft_positives, split_tower
from mar_core.methods.crosskd import CrossKDSpec

__all__ = ["CrossKDLoss", "align"]

_EPS = 1e-6


def align(student: Tensor, teacher: Tensor) -> Tensor:
    """``student`` standardised per channel over the batch and pixels, then given ``teacher``'s
    per-channel mean and (population) std; both ``B x C x H x W``."""
    dims = (0, 2, 3)
    s_mean, s_var = student.mean(dims, keepdim=True), student.var(dims, keepdim=True, correction=0)
    t_mean, t_var = teacher.mean(dims, keepdim=True), teacher.var(dims, keepdim=True, correction=0)
    return (student - s_mean) * torch.rsqrt(s_var + _EPS) * t_var.sqrt() + t_mean


def _box(regression_head: nn.Module, feat: Tensor) -> Tensor:
    """The head's box output as its forward makes it (FCOS: ReLU'd distances)."""
    out = regression_head.bbox_reg(feat)
    return F.relu(out) if hasattr(regression_head, "bbox_ctrness") else out


class CrossKDLoss(KDLoss):
    """``{"crosskd/cls", "crosskd/box"}``, each summed over levels and divided by ``N``."""

    method = "crosskd"
    uses_head = True

    def __init__(
        self,
        channels: int,
        num_levels: int,
        spec: CrossKDSpec,
        two_stage: bool,
        student_channels: int | None = None,
    ) -> None:
        super().__init__(channels, num_levels, spec, two_stage, student_channels)
        self.cls_weight = float(spec.cls_weight)
        self.box_weight = float(spec.box_weight)
        self.index = int(spec.reused_teacher_head_idx)
        self.beta = float(spec.qfl_beta)
        self.cls_adapter = adapter(self.student_channels, channels, spec.adapter)
        self.box_adapter = adapter(self.student_channels, channels, spec.adapter)

    @property
    def trains_adapters(self) -> bool:
        return False

    def _cross(self, s_tower: nn.Module, t_tower: nn.Module, ad: nn.Module, s: Tensor, t: Tensor) -> Tensor:
        """The teacher's remaining tower on the aligned, adapted student features."""
        s_first, _ = split_tower(s_tower, self.index)
        t_first, t_rest = split_tower(t_tower, self.index)
        with torch.no_grad():
            t_hold = t_first(t.float())
        return t_rest(align(ad(s_first(s)).float(), t_hold))

    def forward(
        self,
        student_feats: Sequence[Tensor],
        teacher_feats: Sequence[Tensor],
        boxes: Sequence[Tensor],
        strides: Sequence[tuple[float, float]],
        head: HeadInputs,
    ) -> dict[str, Tensor]:
        sc, tc = head.student.classification_head, head.teacher.classification_head
        sr, tr = head.student.regression_head, head.teacher.regression_head
        a = tc.num_anchors
        cls_terms, box_terms, t_logits_all = [], [], []
        for s, t, t_cls in zip(head.student_feats, head.teacher_feats, head.teacher_cls):
            with torch.no_grad():
                t_logits = tc.cls_logits(t_cls.float())
                t_box = _box(tr, tr.conv(t.float()))
            t_logits_all.append(t_logits)
            x_logits = tc.cls_logits(self._cross(sc.conv, tc.conv, self.cls_adapter, s, t))
            x_box = _box(tr, self._cross(sr.conv, tr.conv, self.box_adapter, s, t))
            p_t = torch.sigmoid(t_logits)
            bce = F.binary_cross_entropy_with_logits(x_logits, p_t, reduction="none")
            cls_terms.append((bce * (torch.sigmoid(x_logits) - p_t).abs().pow(self.beta)).sum())
            weight = per_anchor(p_t, a).amax(2, keepdim=True)  # B x A x 1 x H x W
            box_terms.append((weight * (per_anchor(x_box, a) - per_anchor(t_box, a)).abs()).sum())
        norm = soft_positives(t_logits_all, a)
        return {
            "crosskd/cls": self.cls_weight * torch.stack(cls_terms).sum() / norm,
            "crosskd/box": self.box_weight * torch.stack(box_terms).sum() / norm,
        }
