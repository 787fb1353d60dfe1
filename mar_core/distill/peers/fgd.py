"""FGD peer (Yang et al., CVPR 2022, "Focal and Global Knowledge Distillation for Detectors").

Per level, with the teacher's spatial attention ``A_s = H W softmax_pixels(mean_c |F| / T)``
(``B x H x W``) and channel attention ``A_c = C softmax_channels(mean_hw |F| / T)`` (``B x C``),
``T = 0.5``, the binary foreground mask with 1/area scaling ``M_fg`` and ``M_bg = 1[M_fg == 0] /
N_bg`` (per image), all sums over pixels and channels divided by the batch size ``B``:

    fg        = alpha  * sum(M_fg A_s^T A_c^T (F_T - F_S)^2) / B
    bg        = beta   * sum(M_bg A_s^T A_c^T (F_T - F_S)^2) / B
    attention = gamma  * (sum|A_c^S - A_c^T| + sum|A_s^S - A_s^T|) / B
    global    = lambda * sum((GcBlock_S(F_S) - GcBlock_T(F_T))^2) / B

as in the official code (yzd-v/FGD, mmrazor ``FGDLoss``), with one pair of GcBlocks per level.
The foreground cells of a box are those of ``masks.inverse_area_mask`` (cell centre inside the
box, the cell holding its centre always), each with ``1 / (cells in the box)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mar_core.distill.kd_loss import KDLoss
from mar_core.distill.masks import inverse_area_mask
from mar_core.methods.fgd import FGDSpec

__all__ = ["FGDLoss", "GcBlock", "attention"]

TEMPERATURE = 0.5


def attention(feat: Tensor, temperature: float = TEMPERATURE) -> tuple[Tensor, Tensor]:
    """Spatial ``B x H x W`` (sums to ``H W``) and channel ``B x C`` (sums to ``C``) attention."""
    b, c, h, w = feat.shape
    value = feat.abs()
    spatial = h * w * F.softmax(value.mean(1).reshape(b, -1) / temperature, dim=1)
    channel = c * F.softmax(value.mean((2, 3)) / temperature, dim=1)
    return spatial.reshape(b, h, w), channel


class GcBlock(nn.Module):
    """Global context block: ``x + transform(context(x))``; ``x``: ``B x C x H x W``.

    context: softmax over pixels of a 1x1 conv ``C -> 1``, used to pool ``x`` into ``B x C x 1 x 1``;
    transform: 1x1 conv ``C -> C/2`` - LayerNorm - ReLU - 1x1 conv ``C/2 -> C`` (last conv
    zero-initialised, so the block starts as the identity).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(1, channels // 2)
        self.conv_mask = nn.Conv2d(channels, 1, kernel_size=1)
        self.transform = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1),
            nn.LayerNorm([hidden, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1),
        )
        nn.init.kaiming_normal_(self.conv_mask.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.conv_mask.bias)
        nn.init.zeros_(self.transform[-1].weight)
        nn.init.zeros_(self.transform[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        weights = F.softmax(self.conv_mask(x).reshape(b, 1, -1), dim=2)  # B x 1 x N
        context = torch.bmm(x.reshape(b, c, -1).to(weights.dtype), weights.transpose(1, 2))
        return x + self.transform(context.reshape(b, c, 1, 1))


class FGDLoss(KDLoss):
    """``{"fgd/fg", "fgd/bg", "fgd/attention", "fgd/global"}``, weighted by ``spec.fgd_alpha``,
    ``fgd_beta``, ``fgd_gamma``, ``fgd_lambda`` and summed over levels."""

    method = "fgd"

    def __init__(
        self,
        channels: int,
        num_levels: int,
        spec: FGDSpec,
        two_stage: bool,
        student_channels: int | None = None,
    ) -> None:
        super().__init__(channels, num_levels, spec, two_stage, student_channels)
        self.alpha = float(spec.fgd_alpha)
        self.beta = float(spec.fgd_beta)
        self.gamma = float(spec.fgd_gamma)
        self.lam = float(spec.fgd_lambda)
        self.temperature = TEMPERATURE
        self.gc_student = nn.ModuleList(GcBlock(channels) for _ in range(num_levels))
        self.gc_teacher = nn.ModuleList(GcBlock(channels) for _ in range(num_levels))

    def forward(
        self,
        student_feats: Sequence[Tensor],
        teacher_feats: Sequence[Tensor],
        boxes: Sequence[Tensor],
        strides: Sequence[tuple[float, float]],
    ) -> dict[str, Tensor]:
        pairs = self.levels(student_feats, teacher_feats)
        if len(strides) != len(pairs):
            raise ValueError(f"fgd: {len(strides)} strides for {len(pairs)} levels")
        if len(boxes) != pairs[0][0].shape[0]:
            raise ValueError(f"fgd: {len(boxes)} box tensors for a batch of {pairs[0][0].shape[0]}")
        fg, bg, att, glob = [], [], [], []
        for lvl, (s, t) in enumerate(pairs):
            b, _, h, w = s.shape
            mask_fg = inverse_area_mask(boxes, (h, w), strides[lvl]).to(s.device)
            is_bg = (mask_fg == 0).float()
            mask_bg = is_bg / is_bg.sum((1, 2), keepdim=True).clamp(min=1)
            sp_t, ch_t = attention(t, self.temperature)
            sp_s, ch_s = attention(s, self.temperature)
            # sum over channels of A_c (F_T - F_S)^2, then weight pixels by A_s and the masks
            per_pixel = (ch_t[:, :, None, None] * (t - s).square()).sum(1) * sp_t  # B x H x W
            fg.append((mask_fg * per_pixel).sum() / b)
            bg.append((mask_bg * per_pixel).sum() / b)
            att.append(((ch_s - ch_t).abs().sum() + (sp_s - sp_t).abs().sum()) / b)
            out_s = self.gc_student[lvl](s).float()
            out_t = self.gc_teacher[lvl](t).float()
            glob.append((out_s - out_t).square().sum() / b)
        return {
            "fgd/fg": self.alpha * torch.stack(fg).sum(),
            "fgd/bg": self.beta * torch.stack(bg).sum(),
            "fgd/attention": self.gamma * torch.stack(att).sum(),
            "fgd/global": self.lam * torch.stack(glob).sum(),
        }
