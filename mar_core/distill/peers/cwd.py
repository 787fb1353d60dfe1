"""CWD peer (Shu et al., ICCV 2021): channel-wise spatial distributions, ``KL(T || S) tau^2``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mar_core.distill.kd_loss import KDLoss
from mar_core.methods.cwd import CWDSpec

__all__ = ["CWDLoss"]


class CWDLoss(KDLoss):
    """``{"cwd/kl": loss_weight * sum over levels of tau^2 sum KL(p_T || p_S) / (C B)}``.

    ``p = softmax over the H x W pixels of F / tau``, one distribution per image and channel;
    the KL is summed over pixels and averaged over channels and images (official code).
    ``tau = spec.temperature``.
    """

    method = "cwd"

    def __init__(
        self,
        channels: int,
        num_levels: int,
        spec: CWDSpec,
        two_stage: bool,
        student_channels: int | None = None,
    ) -> None:
        super().__init__(channels, num_levels, spec, two_stage, student_channels)
        self.loss_weight = float(spec.loss_weight)
        self.tau = float(spec.temperature)

    def forward(
        self,
        student_feats: Sequence[Tensor],
        teacher_feats: Sequence[Tensor],
        boxes: Sequence[Tensor],
        strides: Sequence[tuple[float, float]],
    ) -> dict[str, Tensor]:
        terms = []
        for s, t in self.levels(student_feats, teacher_feats):
            b, c = s.shape[:2]
            log_ps = F.log_softmax(s.flatten(2) / self.tau, dim=2)
            log_pt = F.log_softmax(t.flatten(2) / self.tau, dim=2)
            kl = (log_pt.exp() * (log_pt - log_ps)).sum()
            terms.append(kl * self.tau**2 / (b * c))
        return {"cwd/kl": self.loss_weight * torch.stack(terms).sum()}
