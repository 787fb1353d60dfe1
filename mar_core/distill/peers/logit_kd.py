"""Logit KD peer: the teacher's class scores as soft targets (one-stage heads).

Per location, anchor and class, the sigmoid BCE of the student's logit against the teacher's
probability ``sigmoid(t / T)``, less the teacher's entropy (a constant: the same gradient, and
0 when the two agree): ``KL(Bern(p_T) || Bern(p_S)) T^2``. Summed over levels, anchors,
classes and pixels, divided by the soft count of positive anchors (``head_ops.soft_positives``).
RetinaNet and FCOS; Faster R-CNN's box classifier (softmax KL on the student's proposals) is not
implemented.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mar_core.distill.kd_loss import HeadInputs, KDLoss
from mar_core.distill.peers.head_ops import bernoulli_kl, soft_positives
from mar_core.methods.logit_kd import LogitKDSpec

__all__ = ["LogitKDLoss"]


class LogitKDLoss(KDLoss):
    """``{"logit_kd/kl": loss_weight * T^2 sum KL / N_pos}``; ``T = spec.temperature``. The
    student's logits: its ``cls_logits`` on its tower outputs (``B x A K x H x W`` per level)."""

    method = "logit_kd"
    uses_head = True

    def __init__(
        self,
        channels: int,
        num_levels: int,
        spec: LogitKDSpec,
        two_stage: bool,
        student_channels: int | None = None,
    ) -> None:
        super().__init__(channels, num_levels, spec, two_stage, student_channels)
        self.loss_weight = float(spec.loss_weight)
        self.tau = float(spec.temperature)

    @property
    def trains_adapters(self) -> bool:
        return False

    def forward(
        self,
        student_feats: Sequence[Tensor],
        teacher_feats: Sequence[Tensor],
        boxes: Sequence[Tensor],
        strides: Sequence[tuple[float, float]],
        head: HeadInputs,
    ) -> dict[str, Tensor]:
        s_cls, t_cls = head.student.classification_head, head.teacher.classification_head
        with torch.no_grad():
            t_logits = [t_cls.cls_logits(t) for t in head.teacher_cls]
        s_logits = [s_cls.cls_logits(s) for s in head.student_cls]
        norm = soft_positives(t_logits, t_cls.num_anchors, self.tau)
        kl = sum(bernoulli_kl(s, t, self.tau).sum() for s, t in zip(s_logits, t_logits))
        return {"logit_kd/kl": self.loss_weight * self.tau**2 * kl / norm}
