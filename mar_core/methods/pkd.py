"""PKD (Cao et al., NeurIPS 2022): MSE of standardised maps, i.e. ``1 - Pearson``.

The loss module is ``mar_core.distill.peers.pkd.PKDLoss``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from mar_core.methods.base import KDWeight, MethodSpec

__all__ = ["PKDSpec"]


class PKDSpec(MethodSpec):
    # The term is O(1) per level (standardised maps): 1.0 for either detector family.
    WEIGHT_DEFAULTS: ClassVar[dict[str, tuple[float, float]]] = {"loss_weight": (1.0, 1.0)}
    TERM_WEIGHTS: ClassVar[dict[str, str]] = {"pkd/pearson": "loss_weight"}

    method: Literal["pkd"] = "pkd"
    loss_weight: KDWeight = None
