"""FGD (Yang et al., CVPR 2022): focal (fg / bg, attention) and global (GcBlock) distillation.

The loss module is ``mar_core.distill.peers.fgd.FGDLoss``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from mar_core.methods.base import KDWeight, MethodSpec

__all__ = ["FGDSpec"]


class FGDSpec(MethodSpec):
    # FGD's published RetinaNet and Faster R-CNN configs.
    WEIGHT_DEFAULTS: ClassVar[dict[str, tuple[float, float]]] = {
        "fgd_alpha": (1e-3, 5e-5),
        "fgd_beta": (5e-4, 2.5e-5),
        "fgd_gamma": (5e-4, 5e-5),
        "fgd_lambda": (5e-6, 5e-7),
    }
    TERM_WEIGHTS: ClassVar[dict[str, str]] = {
        "fgd/fg": "fgd_alpha",
        "fgd/bg": "fgd_beta",
        "fgd/attention": "fgd_gamma",
        "fgd/global": "fgd_lambda",
    }

    method: Literal["fgd"] = "fgd"
    fgd_alpha: KDWeight = None  # foreground term
    fgd_beta: KDWeight = None  # background term
    fgd_gamma: KDWeight = None  # attention term
    fgd_lambda: KDWeight = None  # global (GcBlock) term
