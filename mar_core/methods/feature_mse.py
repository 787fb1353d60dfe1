"""FitNet-style feature MSE: plain MSE between adapted student and teacher FPN maps.

The loss module is ``mar_core.distill.peers.feature_mse.FeatureMSELoss``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from mar_core.methods.base import KDWeight, MethodSpec

__all__ = ["FeatureMSESpec"]


class FeatureMSESpec(MethodSpec):
    # The term is O(1) per level on normalised features: 1.0 for either detector family.
    WEIGHT_DEFAULTS: ClassVar[dict[str, tuple[float, float]]] = {"loss_weight": (1.0, 1.0)}
    TERM_WEIGHTS: ClassVar[dict[str, str]] = {"feature_mse/mse": "loss_weight"}

    method: Literal["feature_mse"] = "feature_mse"
    loss_weight: KDWeight = None
