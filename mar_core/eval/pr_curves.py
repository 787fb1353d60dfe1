"""Precision-recall curves per class from an accumulated ``COCOeval``.

``pr_curves(ev, class_names)`` summarises COCOeval's precision array (``T x R x K x A x M``: IoU
thresholds, recall points, classes, areas, max detections) at area ``all`` and 100 detections:
``{"recall": [0.0, 0.01, ..., 1.0], "iou": {"0.5": {class: [precision, ...]}, "0.5:0.95":
{class: [...]}}}``. A class without ground truth has ``null`` for its curve; the 0.5:0.95 curve
is the mean of the ten IoU thresholds' curves, so its mean is the class's AP.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools.cocoeval import COCOeval

IOU_50 = "0.5"
IOU_50_95 = "0.5:0.95"
RECALL_POINTS = 101  # COCOeval's recThrs: 0, 0.01, ..., 1


def category_name(class_names: Sequence[str], cat_id: int) -> str:
    """COCO category ``cat_id`` (the detector's label) as a class name; its id when unnamed."""
    return class_names[cat_id - 1] if 0 < cat_id <= len(class_names) else str(cat_id)


def _curve(precision: np.ndarray) -> list[float] | None:
    """``T x R`` precisions (``-1``: no ground truth) -> mean over T per recall point."""
    if (precision < 0).all():
        return None
    return [round(float(v), 4) for v in np.clip(precision, 0.0, None).mean(axis=0)]


def zero_pr_curves(class_names: Sequence[str], with_truth: set[str]) -> dict:
    """The curves of a model that detected nothing: precision 0 for the classes ``with_truth``
    (those with ground truth), ``null`` for the others."""
    recall = [round(float(r), 4) for r in np.linspace(0.0, 1.0, RECALL_POINTS)]
    curve = {c: [0.0] * RECALL_POINTS if c in with_truth else None for c in class_names}
    return {"recall": recall, "iou": {IOU_50: dict(curve), IOU_50_95: dict(curve)}}


def pr_curves(ev: COCOeval, class_names: Sequence[str]) -> dict:
    """The curves of an accumulated ``ev`` (see the module docstring)."""
    precision = ev.eval["precision"][:, :, :, 0, -1]  # T x R x K
    t50 = int(np.argmin(np.abs(ev.params.iouThrs - 0.5)))
    curves: dict[str, dict[str, list[float] | None]] = {IOU_50: {}, IOU_50_95: {}}
    for k, cat_id in enumerate(ev.params.catIds):
        name = category_name(class_names, cat_id)
        curves[IOU_50][name] = _curve(precision[t50 : t50 + 1, :, k])
        curves[IOU_50_95][name] = _curve(precision[:, :, k])
    return {"recall": [round(float(r), 4) for r in ev.params.recThrs], "iou": curves}
