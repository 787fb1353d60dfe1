"""Common base of the peer distillation losses (``docs/mar-method.md`` section 6).

Every peer is an ``nn.Module`` built as ``Peer(channels, num_levels, spec, two_stage)`` whose
``forward(student_feats, teacher_feats, boxes, strides)`` returns named, already-weighted loss
terms ``{"<method>/<term>": scalar float32}``. Inputs: lists per level of ``B x C x H x W``
student features already adapted to the teacher's ``C`` channels and teacher features of the
same shape; ``boxes``: one ``N_i x 4`` xyxy tensor per image in padded-input pixels;
``strides``: ``(sy, sx)`` per level. Like the official implementations (one loss module per
FPN level), each term is the **sum over levels** of its per-level value, so published per-level
weights apply unchanged. Reductions run in float32 whatever the autocast dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor, nn

if TYPE_CHECKING:
    from mar_core.spec import DistillSpec

__all__ = ["PeerLoss"]


class PeerLoss(nn.Module):
    """Base class: stores the shape contract and checks the inputs against it."""

    method: str = ""

    def __init__(self, channels: int, num_levels: int, spec: DistillSpec, two_stage: bool) -> None:
        super().__init__()
        if channels < 1 or num_levels < 1:
            raise ValueError(f"channels ({channels}) and num_levels ({num_levels}) must be >= 1")
        self.channels = channels
        self.num_levels = num_levels
        self.two_stage = two_stage

    def levels(self, student: Sequence[Tensor], teacher: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
        """Checked ``(student, teacher)`` pairs per level, float32, the teacher detached."""
        if len(student) != self.num_levels or len(teacher) != self.num_levels:
            raise ValueError(f"{self.method}: built for {self.num_levels} levels, got "
                             f"{len(student)} student and {len(teacher)} teacher maps")
        pairs = []
        for lvl, (s, t) in enumerate(zip(student, teacher)):
            if s.dim() != 4 or s.shape != t.shape or s.shape[1] != self.channels:
                raise ValueError(f"{self.method} level {lvl}: student {tuple(s.shape)} and teacher "
                                 f"{tuple(t.shape)} must both be B x {self.channels} x H x W")
            pairs.append((s.float(), t.detach().float()))
        return pairs

    def extra_repr(self) -> str:
        return f"channels={self.channels}, num_levels={self.num_levels}, two_stage={self.two_stage}"
