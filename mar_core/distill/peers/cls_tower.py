"""A feature peer moved from the FPN outputs to the classification tower (``pkd_head``, ``cwd_head``).

MAR's relation term reads the classification tower's output (``docs/mar-method.md`` section 3);
the peers read the FPN outputs. To separate the hook place from the method, ``AtClsTower`` runs
a peer's loss unchanged on the tower outputs: the student's ``B x C_s x H x W`` tower map goes
through a 1x1 adapter to the teacher's ``C_t`` channels (the identity when they match and
``adapter: auto``; one adapter shared by the levels, as the tower is) and the peer's terms are
renamed ``<method>/...``. The distiller's FPN adapters get no gradient (``trains_adapters``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from torch import Tensor

from mar_core.distill.kd_loss import KDLoss, adapter
from mar_core.methods import MethodSpec

__all__ = ["AtClsTower"]


class AtClsTower(KDLoss):
    """Base: a subclass sets ``method`` and ``peer`` (the FPN peer's loss class)."""

    peer: ClassVar[type[KDLoss]]
    uses_cls_tower = True

    def __init__(
        self,
        channels: int,
        num_levels: int,
        spec: MethodSpec,
        two_stage: bool,
        student_channels: int | None = None,
    ) -> None:
        super().__init__(channels, num_levels, spec, two_stage, student_channels)
        self.loss = self.peer(channels, num_levels, spec, two_stage)
        self.tower_adapter = adapter(self.student_channels, channels, spec.adapter)

    @property
    def trains_adapters(self) -> bool:
        return False

    def forward(
        self,
        student_feats: Sequence[Tensor],
        teacher_feats: Sequence[Tensor],
        boxes: Sequence[Tensor],
        strides: Sequence[tuple[float, float]],
        student_cls: Sequence[Tensor],
        teacher_cls: Sequence[Tensor],
    ) -> dict[str, Tensor]:
        out = self.loss([self.tower_adapter(s) for s in student_cls], teacher_cls, boxes, strides)
        return {f"{self.method}/{name.split('/', 1)[1]}": value for name, value in out.items()}
