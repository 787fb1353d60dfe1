"""Distillation losses and masks: pure tensor functions and small modules (no hooks, no models).

``multi_value_mask`` (masks per level), ``mask_guided_feature_loss`` (fg / bg feature terms),
``relation_loss`` (pixel-relation term without N x N matrices), ``build_kd_loss`` /
``build_peer`` (the loss module of a registered method: MAR, or FGD, MGD, PKD, CWD, feature MSE,
PKD / CWD at the classification tower, logit KD, CrossKD for the comparison table; the registry
is ``mar_core.methods.METHODS``). See ``docs/mar-method.md``.
"""

from mar_core.distill.feature_loss import mask_guided_feature_loss, resize_to
from mar_core.distill.kd_loss import KDLoss, build_kd_loss, build_peer
from mar_core.distill.masks import multi_value_mask
from mar_core.distill.relation import relation_loss

__all__ = [
    "KDLoss",
    "build_kd_loss",
    "build_peer",
    "mask_guided_feature_loss",
    "multi_value_mask",
    "relation_loss",
    "resize_to",
]
