"""Logit KD: the teacher's class scores as soft targets (sigmoid for RetinaNet / FCOS, softmax on
the student's proposals for Faster R-CNN's box classifier).

The loss module is ``mar_core.distill.peers.logit_kd.LogitKDLoss``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from mar_core.methods.base import KDWeight, MethodSpec, SearchPoints
from mar_core.spec_limits import MAX_LOSS_WEIGHT

__all__ = ["LogitKDSpec"]


class LogitKDSpec(MethodSpec):
    # Normalised like the detection classification loss (by the soft count of positives; the mean
    # over proposals for Faster R-CNN): 1.0 for both.
    WEIGHT_DEFAULTS: ClassVar[dict[str, tuple[float, float]]] = {"loss_weight": (1.0, 1.0)}
    TERM_WEIGHTS: ClassVar[dict[str, str]] = {"logit_kd/kl": "loss_weight"}
    # In the distiller search: two-stage only, at the calibration rule (frcnn-synth-short: 0.90 AP
    # above MAR's default; on the one-stage short group it ranked 9 of 11 even at x9)
    SEARCH_POINTS: ClassVar[SearchPoints] = ((), ({},))

    method: Literal["logit_kd"] = "logit_kd"
    loss_weight: KDWeight = None
    temperature: float = Field(default=1.0, gt=0, le=MAX_LOSS_WEIGHT)  # T of the sigmoid
