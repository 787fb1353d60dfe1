"""CWD (Shu et al., ICCV 2021): channel-wise spatial distributions, ``KL(T || S) tau^2``.

The loss module is ``mar_core.distill.peers.cwd.CWDLoss``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from mar_core.methods.base import KDWeight, MethodSpec
from mar_core.spec_limits import MAX_LOSS_WEIGHT

__all__ = ["CWDSpec"]


class CWDSpec(MethodSpec):
    # The term is O(1) per level (distributions): 1.0 for either detector family.
    WEIGHT_DEFAULTS: ClassVar[dict[str, tuple[float, float]]] = {"loss_weight": (1.0, 1.0)}
    TERM_WEIGHTS: ClassVar[dict[str, str]] = {"cwd/kl": "loss_weight"}

    method: Literal["cwd"] = "cwd"
    loss_weight: KDWeight = None
    temperature: float = Field(default=1.0, gt=0, le=MAX_LOSS_WEIGHT)  # tau of the spatial softmax
