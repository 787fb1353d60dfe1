"""The score threshold and detection limits of a torchvision detector, wherever its class keeps them.

RetinaNet and FCOS hold ``score_thresh``, ``detections_per_img`` and ``topk_candidates`` on the
model; Faster R-CNN (``GeneralizedRCNN``) holds ``score_thresh`` and ``detections_per_img`` on its
``roi_heads``. ``detector_settings`` sets any of them for a ``with`` block and restores them after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

SETTINGS = ("score_thresh", "detections_per_img", "topk_candidates")


def _holder(model: nn.Module) -> nn.Module:
    """The module that holds the post-processing settings (``roi_heads`` of a two-stage detector)."""
    return getattr(model, "roi_heads", model)


def score_threshold_of(model: nn.Module) -> float:
    """The score below which ``model`` drops a detection in post-processing."""
    return float(_holder(model).score_thresh)


@contextmanager
def detector_settings(model: nn.Module, **values: float | int | None) -> Iterator[nn.Module]:
    """Set post-processing settings (``score_thresh=``, ``detections_per_img=``,
    ``topk_candidates=``; ``None`` leaves one as it is) for the block, then restore them.
    A setting the detector class does not have (``topk_candidates`` of Faster R-CNN) is skipped."""
    unknown = set(values) - set(SETTINGS)
    if unknown:
        raise ValueError(f"unknown detector settings {sorted(unknown)}; valid: {', '.join(SETTINGS)}")
    holder = _holder(model)
    saved = {}
    try:
        for name, value in values.items():
            if value is not None and hasattr(holder, name):
                saved[name] = getattr(holder, name)
                setattr(holder, name, value)
        yield model
    finally:
        for name, value in saved.items():
            setattr(holder, name, value)
