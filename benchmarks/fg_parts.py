"""The mask-guided feature loss of one level split into mean-offset, scale and correlation parts.

For one image and channel, with pixel weights ``w`` (the mask), weighted means ``mu``, weighted
population standard deviations ``sigma`` and covariance ``cov`` over the pixels,

    E_w[(T - S)^2] = (mu_T - mu_S)^2 + (sigma_T - sigma_S)^2 + 2 (sigma_T sigma_S - cov)
                   =  offset         +  scale                +  correlation

(the last is ``2 sigma_T sigma_S (1 - r)``, ``r`` the weighted Pearson correlation). The level's
term of ``mar_core.distill.mask_guided_feature_loss``, ``sum(M D) / max(1, sum(M))`` with ``D``
the channel mean of ``(T - S)^2``, is the mask-mass-weighted sum of these over images, averaged
over channels, so the three parts add up to it exactly. Only the correlation part measures the
content (which pixels are high, which low); offset and scale are what a per-channel affine map
(a GroupNorm, a 1x1 adapter with a bias) can absorb.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["PARTS", "loss_parts"]

PARTS = ("offset", "scale", "correlation")


def loss_parts(student: Tensor, teacher: Tensor, weight: Tensor) -> dict[str, float]:
    """``{"offset", "scale", "correlation"}`` of ``sum(weight D) / max(1, sum(weight))``.

    ``student``, ``teacher``: ``B x C x H x W`` (the student already adapted); ``weight``:
    ``B x H x W``, non-negative (the multi-value mask, or ``1[mask == 0]`` for the background).
    Computed in float64.
    """
    s, t = student.detach().double().flatten(2), teacher.detach().double().flatten(2)  # B x C x N
    w = weight.detach().double().flatten(1)[:, None, :]  # B x 1 x N
    mass = w.sum(2)  # B x 1
    per_image = mass / mass.sum().clamp(min=1)  # B x 1: the image's share of the level's term
    mass = mass.clamp(min=torch.finfo(torch.float64).tiny)
    mu_s, mu_t = (w * s).sum(2) / mass, (w * t).sum(2) / mass  # B x C
    ds, dt = s - mu_s[..., None], t - mu_t[..., None]
    sd_s = ((w * ds.square()).sum(2) / mass).sqrt()
    sd_t = ((w * dt.square()).sum(2) / mass).sqrt()
    cov = (w * ds * dt).sum(2) / mass
    parts = {
        "offset": (mu_t - mu_s).square(),
        "scale": (sd_t - sd_s).square(),
        "correlation": 2 * (sd_t * sd_s - cov),
    }
    return {k: float((per_image * v).mean(1, keepdim=True).sum()) for k, v in parts.items()}
