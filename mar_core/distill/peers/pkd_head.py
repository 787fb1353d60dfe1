"""PKD at the classification tower (``pkd_head``): ``peers/pkd.py``'s loss on the tower outputs."""

from __future__ import annotations

from mar_core.distill.peers.cls_tower import AtClsTower
from mar_core.distill.peers.pkd import PKDLoss

__all__ = ["PKDHeadLoss"]


class PKDHeadLoss(AtClsTower):
    """``{"pkd_head/pearson"}``: ``PKDLoss`` on the adapted student and the teacher tower maps."""

    method = "pkd_head"
    peer = PKDLoss
