"""MGD (Yang et al., ECCV 2022): generate the teacher map from a randomly masked student map.

The loss module is ``mar_core.distill.peers.mgd.MGDLoss``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from mar_core.methods.base import KDWeight, MethodSpec

__all__ = ["MGDSpec"]


class MGDSpec(MethodSpec):
    # The paper's weights for its summed MSE: 2e-5 RetinaNet, 5e-7 Faster R-CNN.
    WEIGHT_DEFAULTS: ClassVar[dict[str, tuple[float, float]]] = {"loss_weight": (2e-5, 5e-7)}
    TERM_WEIGHTS: ClassVar[dict[str, str]] = {"mgd/generation": "loss_weight"}

    method: Literal["mgd"] = "mgd"
    loss_weight: KDWeight = None
    mgd_ratio: float | None = Field(
        default=None, gt=0, lt=1
    )  # masked share; None: 0.65 one-stage, 0.45 two-stage
