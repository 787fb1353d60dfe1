"""PKD at the classification tower (MAR's relation hook place) instead of the FPN outputs.

The loss module is ``mar_core.distill.peers.pkd_head.PKDHeadLoss``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from mar_core.methods.pkd import PKDSpec

__all__ = ["PKDHeadSpec"]


class PKDHeadSpec(PKDSpec):
    TERM_WEIGHTS: ClassVar[dict[str, str]] = {"pkd_head/pearson": "loss_weight"}

    method: Literal["pkd_head"] = "pkd_head"  # type: ignore[assignment]
