"""MGD peer (Yang et al., ECCV 2022): generate the teacher map from a randomly masked student map."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mar_core.distill.kd_loss import KDLoss
from mar_core.methods.mgd import MGDSpec

__all__ = ["ONE_STAGE_RATIO", "TWO_STAGE_RATIO", "MGDLoss"]

ONE_STAGE_RATIO = 0.65
TWO_STAGE_RATIO = 0.45


def _generator(channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 3, padding=1),
    )


class MGDLoss(KDLoss):
    """``{"mgd/generation": loss_weight * sum over levels of sum((G_l(F_S * K) - F_T)^2) / B}``.

    ``K``: ``B x 1 x H x W``, 0 on a random ``ratio`` of the pixels (drawn per level, in level
    order, with ``torch.rand`` on the features' device), 1 elsewhere. ``G_l``: a 3x3 conv -
    ReLU - 3x3 conv generator per level, trained with the student and dropped at export.
    ``ratio = spec.mgd_ratio``, or 0.65 (one-stage) / 0.45 (two-stage). The paper's weights
    (2e-5 RetinaNet, 5e-7 Faster R-CNN) suit its summed MSE: pass them as ``spec.loss_weight``.
    """

    method = "mgd"

    def __init__(
        self,
        channels: int,
        num_levels: int,
        spec: MGDSpec,
        two_stage: bool,
        student_channels: int | None = None,
    ) -> None:
        super().__init__(channels, num_levels, spec, two_stage, student_channels)
        self.loss_weight = float(spec.loss_weight)
        default = TWO_STAGE_RATIO if two_stage else ONE_STAGE_RATIO
        self.ratio = float(spec.mgd_ratio) if spec.mgd_ratio is not None else default
        self.generators = nn.ModuleList(_generator(channels) for _ in range(num_levels))

    def keep_mask(self, like: Tensor) -> Tensor:
        """``B x 1 x H x W`` float: 0 with probability ``ratio``, else 1."""
        b, _, h, w = like.shape
        return (torch.rand(b, 1, h, w, device=like.device) >= self.ratio).to(like.dtype)

    def forward(
        self,
        student_feats: Sequence[Tensor],
        teacher_feats: Sequence[Tensor],
        boxes: Sequence[Tensor],
        strides: Sequence[tuple[float, float]],
    ) -> dict[str, Tensor]:
        terms = []
        for gen, (s, t) in zip(self.generators, self.levels(student_feats, teacher_feats)):
            generated = gen(s * self.keep_mask(s)).float()
            terms.append((generated - t).square().sum() / s.shape[0])
        return {"mgd/generation": self.loss_weight * torch.stack(terms).sum()}
