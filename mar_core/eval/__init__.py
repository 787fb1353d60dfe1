"""COCO evaluation (pycocotools)."""

from mar_core.eval.coco_eval import SUMMARY_NAMES, coco_metrics, evaluate_detector, predict

__all__ = ["SUMMARY_NAMES", "coco_metrics", "evaluate_detector", "predict"]
