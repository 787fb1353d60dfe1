"""CWD at the classification tower (MAR's relation hook place) instead of the FPN outputs.

The loss module is ``mar_core.distill.peers.cwd_head.CWDHeadLoss``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from mar_core.methods.base import SearchPoints
from mar_core.methods.cwd import CWDSpec

__all__ = ["CWDHeadSpec"]


class CWDHeadSpec(CWDSpec):
    TERM_WEIGHTS: ClassVar[dict[str, str]] = {"cwd_head/kl": "loss_weight"}
    # In the distiller search: its equal-tuning pick, 9x the calibration rule (first on the short
    # group); not measured on a two-stage student, so no candidate there
    SEARCH_POINTS: ClassVar[SearchPoints] = (
        ({"auto_scale": 9.0},),
        (),
    )

    method: Literal["cwd_head"] = "cwd_head"  # type: ignore[assignment]
