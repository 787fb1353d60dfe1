"""FitNet-style peer: plain MSE between adapted student and teacher FPN maps."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mar_core.distill.kd_loss import KDLoss
from mar_core.methods.feature_mse import FeatureMSESpec

__all__ = ["FeatureMSELoss"]


class FeatureMSELoss(KDLoss):
    """``{"feature_mse/mse": loss_weight * sum over levels of mean((F_S - F_T)^2)}``."""

    method = "feature_mse"

    def __init__(
        self,
        channels: int,
        num_levels: int,
        spec: FeatureMSESpec,
        two_stage: bool,
        student_channels: int | None = None,
    ) -> None:
        super().__init__(channels, num_levels, spec, two_stage, student_channels)
        self.loss_weight = float(spec.loss_weight)

    def forward(
        self,
        student_feats: Sequence[Tensor],
        teacher_feats: Sequence[Tensor],
        boxes: Sequence[Tensor],
        strides: Sequence[tuple[float, float]],
    ) -> dict[str, Tensor]:
        terms = [F.mse_loss(s, t) for s, t in self.levels(student_feats, teacher_feats)]
        return {"feature_mse/mse": self.loss_weight * torch.stack(terms).sum()}
