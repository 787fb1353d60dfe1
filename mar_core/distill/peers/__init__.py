"""Registry of the peer distillation methods compared against MAR (``docs/mar-method.md`` s. 6)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mar_core import names
from mar_core.distill.peers.base import PeerLoss
from mar_core.distill.peers.cwd import CWDLoss
from mar_core.distill.peers.feature_mse import FeatureMSELoss
from mar_core.distill.peers.fgd import FGDLoss
from mar_core.distill.peers.mgd import MGDLoss
from mar_core.distill.peers.pkd import PKDLoss

if TYPE_CHECKING:
    from mar_core.spec import DistillSpec

__all__ = ["PEERS", "PeerLoss", "build_peer"]

PEERS: dict[str, type[PeerLoss]] = {
    "feature_mse": FeatureMSELoss,
    "fgd": FGDLoss,
    "mgd": MGDLoss,
    "pkd": PKDLoss,
    "cwd": CWDLoss,
}

if set(PEERS) != set(names.DISTILL_METHODS) - {"mar"}:
    raise RuntimeError(f"peer registry {sorted(PEERS)} does not match mar_core.names.DISTILL_METHODS "
                       f"{names.DISTILL_METHODS} (minus 'mar')")


def build_peer(method: str, channels: int, num_levels: int, spec: DistillSpec,
               two_stage: bool) -> PeerLoss:
    """The peer loss module registered as ``method``; an unknown name lists the valid ones."""
    if method not in PEERS:
        raise ValueError(f"unknown peer distillation method {method!r}; valid: {', '.join(PEERS)}")
    return PEERS[method](channels, num_levels, spec.with_weight_defaults(two_stage), two_stage)
