"""COCO evaluation (pycocotools)."""

from mar_core.eval.coco_eval import (
    SUMMARY_NAMES,
    Evaluation,
    coco_evaluation,
    coco_metrics,
    evaluate_detector,
    evaluate_model,
    predict,
)
from mar_core.eval.pr_curves import pr_curves

__all__ = [
    "SUMMARY_NAMES",
    "Evaluation",
    "coco_evaluation",
    "coco_metrics",
    "evaluate_detector",
    "evaluate_model",
    "pr_curves",
    "predict",
]
