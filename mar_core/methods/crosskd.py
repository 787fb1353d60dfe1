"""CrossKD (Wang et al., CVPR 2024, "CrossKD: Cross-Head Knowledge Distillation for Object
Detection"): the student's intermediate head features run through the teacher's remaining head
layers, and those cross-head predictions mimic the teacher's (classification and box).

The loss module is ``mar_core.distill.peers.crosskd.CrossKDLoss``. RetinaNet and FCOS.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from mar_core.methods.base import KDWeight, MethodSpec, SearchPoints
from mar_core.spec_limits import MAX_LOSS_WEIGHT

__all__ = ["CrossKDSpec"]


class CrossKDSpec(MethodSpec):
    # The official configs: loss_weight 1.0 for both terms (one-stage; no two-stage head here).
    WEIGHT_DEFAULTS: ClassVar[dict[str, tuple[float, float]]] = {
        "cls_weight": (1.0, 1.0),
        "box_weight": (1.0, 1.0),
    }
    TERM_WEIGHTS: ClassVar[dict[str, str]] = {"crosskd/cls": "cls_weight", "crosskd/box": "box_weight"}
    # Not a search candidate of its own: ``mar_cross`` holds its term at its equal-tuning pick (9x
    # the calibration rule) beside MAR's, and the search ranks 4 candidates, not 5 (a 5th halves
    # the first rung's steps; mar_core/search/halving.py).
    SEARCH_POINTS: ClassVar[SearchPoints] = ((), ())

    method: Literal["crosskd"] = "crosskd"
    cls_weight: KDWeight = None  # quality focal loss of the cross-head class scores
    box_weight: KDWeight = None  # score-weighted L1 of the cross-head box outputs
    # The student's features after this many tower blocks (pre-activation) enter the teacher's
    # head: 3 of 4 in the official RetinaNet configs; 4 = the teacher's predictors only.
    reused_teacher_head_idx: int = Field(default=3, ge=0, le=64)
    qfl_beta: float = Field(default=1.0, ge=0, le=MAX_LOSS_WEIGHT)  # quality focal loss exponent
