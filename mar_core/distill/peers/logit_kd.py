"""Logit KD peer: the teacher's class scores as soft targets.

One-stage heads (RetinaNet, FCOS): per location, anchor and class, the sigmoid BCE of the
student's logit against the teacher's probability ``sigmoid(t / T)``, less the teacher's entropy
(a constant: the same gradient, and 0 when the two agree): ``KL(Bern(p_T) || Bern(p_S)) T^2``.
Summed over levels, anchors, classes and pixels, divided by the soft count of positive anchors
(``head_ops.soft_positives``).

Faster R-CNN's box classifier (Hinton et al.'s KD on the R-CNN stage): the softmax KL
``KL(softmax(t / T) || softmax(s / T)) T^2`` over the ``K + 1`` classes (background included) of
each of the student's sampled proposals, the teacher's logits computed on the same proposals;
the mean over proposals, as the detector's own ``loss_classifier`` (cross-entropy) is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mar_core.distill.kd_loss import BoxClassifierInputs, HeadInputs, KDLoss
from mar_core.distill.peers.head_ops import bernoulli_kl, soft_positives
from mar_core.methods.logit_kd import LogitKDSpec

__all__ = ["LogitKDLoss", "softmax_kl"]


def softmax_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Per row of ``R x C`` logits, ``KL(softmax(t / T) || softmax(s / T))`` (``R``, float32)."""
    log_s = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_t = F.log_softmax(teacher_logits.detach().float() / temperature, dim=1)
    return F.kl_div(log_s, log_t, reduction="none", log_target=True).sum(1)


class LogitKDLoss(KDLoss):
    """``{"logit_kd/kl": loss_weight * T^2 * KL}``; ``T = spec.temperature``. One-stage: the sum
    of Bernoulli KLs over the student's ``cls_logits`` on its tower outputs (``B x A K x H x W``
    per level) divided by the soft count of positives; two-stage: the mean softmax KL over the
    sampled proposals (``R x (K + 1)``)."""

    method = "logit_kd"
    uses_head = True  # one-stage; a two-stage instance reads the box classifiers instead

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
        # which inputs the distiller passes: the heads (one-stage) or the box classifiers
        self.uses_head = not two_stage
        self.uses_box_classifier = two_stage

    @property
    def trains_adapters(self) -> bool:
        return False

    def forward(
        self,
        student_feats: Sequence[Tensor],
        teacher_feats: Sequence[Tensor],
        boxes: Sequence[Tensor],
        strides: Sequence[tuple[float, float]],
        head: HeadInputs | None = None,
        box_classifier: BoxClassifierInputs | None = None,
    ) -> dict[str, Tensor]:
        if box_classifier is not None:
            kl = softmax_kl(box_classifier.student_logits, box_classifier.teacher_logits, self.tau)
            return {"logit_kd/kl": self.loss_weight * self.tau**2 * kl.mean()}
        if head is None:
            raise ValueError("logit_kd: a one-stage student needs the heads (HeadInputs)")
        s_cls, t_cls = head.student.classification_head, head.teacher.classification_head
        with torch.no_grad():
            t_logits = [t_cls.cls_logits(t) for t in head.teacher_cls]
        s_logits = [s_cls.cls_logits(s) for s in head.student_cls]
        norm = soft_positives(t_logits, t_cls.num_anchors, self.tau)
        kl = sum(bernoulli_kl(s, t, self.tau).sum() for s, t in zip(s_logits, t_logits))
        return {"logit_kd/kl": self.loss_weight * self.tau**2 * kl / norm}
