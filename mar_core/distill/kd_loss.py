"""The loss module of a distillation method: its common base, and how a job builds it.

Every method's loss (MAR's in ``mar.py``, the peers' in ``peers/``, ``docs/mar-method.md``
sections 2-3 and 6) is an ``nn.Module`` built as ``Loss(channels, num_levels, spec, two_stage)``
from the method's spec model (``mar_core.methods``) whose ``forward(student_feats,
teacher_feats, boxes, strides)`` returns named, already-weighted loss terms ``{"<term>": scalar
float32}``. Inputs: lists per level of ``B x C x H x W`` student features already adapted to the
teacher's ``C`` channels and teacher features of the same shape; ``boxes``: one ``N_i x 4`` xyxy
tensor per image in padded-input pixels; ``strides``: ``(sy, sx)`` per level. A loss that also
reads the classification towers (``uses_cls_tower``) gets ``student_cls`` and ``teacher_cls``,
one ``B x C' x H x W`` map per level (C' may differ between student and teacher). Like the
official implementations of the peers (one loss module per FPN level), a peer's term is the
**sum over levels** of its per-level value, so published per-level weights apply unchanged.
Reductions run in float32 whatever the autocast dtype.

``build_kd_loss`` imports the loss module that the registry (``mar_core.methods.METHODS``) names
for the spec's method; unset loss weights take the method's defaults for the detector family.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from mar_core.methods import METHODS, MethodSpec

__all__ = [
    "BoxClassifierInputs",
    "HeadInputs",
    "KDLoss",
    "adapter",
    "build_kd_loss",
    "build_peer",
    "loss_class",
]


def adapter(c_in: int, c_out: int, mode: str) -> nn.Module:
    """A student -> teacher channel map: identity when the channels match and ``mode`` is
    ``"auto"``, else a 1x1 conv ``c_in -> c_out`` (``MethodSpec.adapter``)."""
    if c_in == c_out and mode == "auto":
        return nn.Identity()
    return nn.Conv2d(c_in, c_out, kernel_size=1)


@dataclass(frozen=True)
class HeadInputs:
    """What a loss that reads the one-stage detection heads (``uses_head``) gets, per distilled
    level: the raw FPN maps (student ``B x C_s x H x W``, teacher ``B x C_t x H x W`` resized to
    the student's), both classification-tower outputs, and the two ``model.head`` modules
    (RetinaNet / FCOS: ``classification_head`` and ``regression_head`` with ``conv`` towers,
    ``cls_logits`` and ``bbox_reg``); the teacher's is frozen, so a gradient through it reaches
    only the student."""

    student: nn.Module
    teacher: nn.Module
    student_feats: list[Tensor]
    teacher_feats: list[Tensor]
    student_cls: list[Tensor]
    teacher_cls: list[Tensor]


@dataclass(frozen=True)
class BoxClassifierInputs:
    """What a loss that reads a two-stage detector's box classifier (``uses_box_classifier``)
    gets: the student's class logits on its sampled proposals (``R x (K + 1)``, background first,
    as torchvision's ``FastRCNNPredictor`` gives them) and the frozen teacher's on the same
    proposals, pooled from its own FPN maps (``R x (K + 1)``, no gradient)."""

    student_logits: Tensor
    teacher_logits: Tensor


class KDLoss(nn.Module):
    """Base class: stores the shape contract and checks the inputs against it."""

    method: ClassVar[str] = ""
    uses_cls_tower: ClassVar[bool] = False  # forward also takes student_cls / teacher_cls
    uses_head: ClassVar[bool] = False  # forward also takes head (HeadInputs); one-stage only
    # forward also takes box_classifier (BoxClassifierInputs); two-stage only
    uses_box_classifier: ClassVar[bool] = False

    def __init__(
        self,
        channels: int,
        num_levels: int,
        spec: MethodSpec,
        two_stage: bool,
        student_channels: int | None = None,
    ) -> None:
        super().__init__()
        if channels < 1 or num_levels < 1:
            raise ValueError(f"channels ({channels}) and num_levels ({num_levels}) must be >= 1")
        self.channels = channels
        self.student_channels = channels if student_channels is None else student_channels
        self.num_levels = num_levels
        self.two_stage = two_stage

    @property
    def trains_adapters(self) -> bool:
        """Whether the terms read the adapted student features (else the adapters get no gradient)."""
        return True

    def levels(self, student: Sequence[Tensor], teacher: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
        """Checked ``(student, teacher)`` pairs per level, float32, the teacher detached."""
        if len(student) != self.num_levels or len(teacher) != self.num_levels:
            raise ValueError(
                f"{self.method}: built for {self.num_levels} levels, got "
                f"{len(student)} student and {len(teacher)} teacher maps"
            )
        pairs = []
        for lvl, (s, t) in enumerate(zip(student, teacher)):
            if s.dim() != 4 or s.shape != t.shape or s.shape[1] != self.channels:
                raise ValueError(
                    f"{self.method} level {lvl}: student {tuple(s.shape)} and teacher "
                    f"{tuple(t.shape)} must both be B x {self.channels} x H x W"
                )
            pairs.append((s.float(), t.detach().float()))
        return pairs

    def extra_repr(self) -> str:
        return f"channels={self.channels}, num_levels={self.num_levels}, two_stage={self.two_stage}"


def _known(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown distillation method {method!r}; valid: {', '.join(METHODS)}")
    return method


def loss_class(method: str) -> type[KDLoss]:
    """The loss module registered for ``method``, imported now; an unknown name lists the valid ones."""
    module, _, name = METHODS[_known(method)].loss.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, KDLoss) and cls.method == method):
        raise TypeError(
            f"{METHODS[method].loss} (registered for {method!r}) is not a KDLoss whose method is {method!r}"
        )
    return cls


def build_kd_loss(
    spec: MethodSpec, channels: int, num_levels: int, two_stage: bool, student_channels: int | None = None
) -> KDLoss:
    """The loss module of ``spec.method`` for ``channels`` (the teacher's; ``student_channels``
    the student's, default the same) and ``num_levels``; unset loss weights take the method's
    defaults for a one- or two-stage student. ``"auto"`` weights must have been sized first
    (``mar_core.distill.auto_weights``; a job does it)."""
    spec = spec.with_weight_defaults(two_stage)
    if auto := spec.auto_weight_fields():
        raise ValueError(
            f"{spec.method}: {', '.join(auto)} = 'auto' must be sized before the loss is built "
            "(mar_core.distill.auto_weights.resolve_kd_weights, as a job does), or given as numbers"
        )
    return loss_class(spec.method)(channels, num_levels, spec, two_stage, student_channels)


def build_peer(method: str, channels: int, num_levels: int, spec: MethodSpec, two_stage: bool) -> KDLoss:
    """``build_kd_loss`` naming the method too (the README's library API); ``spec`` must be that
    method's spec model."""
    if _known(method) != spec.method:
        raise ValueError(f"build_peer({method!r}, ...) got the spec of method {spec.method!r}")
    return build_kd_loss(spec, channels, num_levels, two_stage)
