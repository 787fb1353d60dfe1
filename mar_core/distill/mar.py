"""MAR's loss module (``docs/mar-method.md``): ``alpha * L_fg``, ``beta * L_bg``, ``gamma * L_rel``.

The multi-value masks of each level (``masks.py``) weight the mask-guided feature terms on the
adapted FPN outputs (``feature_loss.py``; with ``feature_norm: channel`` on the maps standardised
per image and channel, ``peers.pkd.standardise``) and, with ``relation_weight: mask``, the relation term
on the classification towers (``relation.py``). Spec model: ``mar_core.methods.mar.MARSpec``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from mar_core.distill.feature_loss import mask_guided_feature_loss
from mar_core.distill.kd_loss import KDLoss
from mar_core.distill.masks import multi_value_mask
from mar_core.distill.peers.pkd import standardise
from mar_core.distill.relation import relation_loss
from mar_core.methods.mar import MARSpec

__all__ = ["MARLoss"]


class MARLoss(KDLoss):
    """``{"fg", "bg"}`` (unless ``feature_loss`` is off) and ``{"relation"}`` (unless
    ``relation_loss`` is off), weighted by ``spec.alpha``, ``beta``, ``gamma``; each averaged
    over levels. No parameters: the adapters belong to the distiller."""

    method = "mar"
    uses_cls_tower = True

    def __init__(
        self,
        channels: int,
        num_levels: int,
        spec: MARSpec,
        two_stage: bool,
        student_channels: int | None = None,
    ) -> None:
        super().__init__(channels, num_levels, spec, two_stage, student_channels)
        self.spec = spec

    @property
    def trains_adapters(self) -> bool:
        return self.spec.feature_loss

    def masks(
        self, feats: Sequence[Tensor], boxes: Sequence[Tensor], strides: Sequence[tuple[float, float]]
    ) -> list[Tensor]:
        """The multi-value mask of each level, ``B x H_l x W_l`` (``feats[l]``: ``B x C x H_l x W_l``)."""
        cfg = self.spec
        return [
            multi_value_mask(
                boxes,
                f.shape[-2:],
                st,
                kappas=cfg.kappas,
                values=cfg.ring_values,
                mode=cfg.mask,
                sigma=cfg.gaussian_sigma,
                scale_norm=cfg.scale_norm,
            )
            for f, st in zip(feats, strides)
        ]

    def forward(
        self,
        student_feats: Sequence[Tensor],
        teacher_feats: Sequence[Tensor],
        boxes: Sequence[Tensor],
        strides: Sequence[tuple[float, float]],
        student_cls: Sequence[Tensor],
        teacher_cls: Sequence[Tensor],
    ) -> dict[str, Tensor]:
        cfg = self.spec
        masks = self.masks(student_feats, boxes, strides)
        out: dict[str, Tensor] = {}
        if cfg.feature_loss:
            if cfg.feature_norm == "channel":
                student_feats = [standardise(f.float()) for f in student_feats]
                teacher_feats = [standardise(f.detach().float()) for f in teacher_feats]
            fb = mask_guided_feature_loss(student_feats, teacher_feats, masks)
            out["fg"], out["bg"] = cfg.alpha * fb["fg"], cfg.beta * fb["bg"]
        if cfg.relation_loss:
            weights = (
                [m + cfg.relation_weight_floor for m in masks] if cfg.relation_weight == "mask" else None
            )
            out["relation"] = cfg.gamma * relation_loss(student_cls, teacher_cls, weights)
        return out
