"""Normalisation layers by spec name."""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn
from torchvision.ops import FrozenBatchNorm2d

NormFactory = Callable[[int], nn.Module]


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups, or the largest divisor of ``channels`` below it."""
    return nn.GroupNorm(math.gcd(32, channels), channels)


NORM_LAYERS: dict[str, NormFactory] = {
    "group": group_norm,
    "batch": nn.BatchNorm2d,
    "frozen_batch": FrozenBatchNorm2d,
}


def head_group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm for detection heads: at least two channels per group, so a 1 x 1 map (P7 of a
    small image) still normalises."""
    return nn.GroupNorm(math.gcd(32, max(1, channels // 2)), channels)
