"""CWD at the classification tower (``cwd_head``): ``peers/cwd.py``'s loss on the tower outputs."""

from __future__ import annotations

from mar_core.distill.peers.cls_tower import AtClsTower
from mar_core.distill.peers.cwd import CWDLoss

__all__ = ["CWDHeadLoss"]


class CWDHeadLoss(AtClsTower):
    """``{"cwd_head/kl"}``: ``CWDLoss`` on the adapted student and the teacher tower maps."""

    method = "cwd_head"
    peer = CWDLoss
