"""MAR's losses with CrossKD's cross-head term (``MARCrossSpec``)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from mar_core.distill.kd_loss import HeadInputs
from mar_core.distill.mar import MARLoss
from mar_core.distill.peers.crosskd import CrossKDLoss
from mar_core.methods.crosskd import CrossKDSpec
from mar_core.methods.mar_cross import MARCrossSpec

__all__ = ["MARCrossLoss"]


class MARCrossLoss(MARLoss):
    """MAR's ``{"fg", "bg", "relation"}`` and CrossKD's ``{"crosskd/cls", "crosskd/box"}``."""

    method = "mar_cross"
    uses_head = True

    def __init__(
        self,
        channels: int,
        num_levels: int,
        spec: MARCrossSpec,
        two_stage: bool,
        student_channels: int | None = None,
    ) -> None:
        super().__init__(channels, num_levels, spec, two_stage, student_channels)
        cross = CrossKDSpec(
            adapter=spec.adapter,
            cls_weight=spec.cross_cls_weight,
            box_weight=spec.cross_box_weight,
            reused_teacher_head_idx=spec.reused_teacher_head_idx,
            qfl_beta=spec.qfl_beta,
        )
        self.cross = CrossKDLoss(channels, num_levels, cross, two_stage, student_channels)

    def forward(
        self,
        student_feats: Sequence[Tensor],
        teacher_feats: Sequence[Tensor],
        boxes: Sequence[Tensor],
        strides: Sequence[tuple[float, float]],
        student_cls: Sequence[Tensor],
        teacher_cls: Sequence[Tensor],
        head: HeadInputs,
    ) -> dict[str, Tensor]:
        out = super().forward(student_feats, teacher_feats, boxes, strides, student_cls, teacher_cls)
        out.update(self.cross(student_feats, teacher_feats, boxes, strides, head=head))
        return out
