"""COCO evaluation with pycocotools: AP, AP50, AP75, APs, APm, APl and per-class AP."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import nn

from mar_core.data import build_eval_loader
from mar_core.eval.pr_curves import category_name, pr_curves, zero_pr_curves

log = logging.getLogger(__name__)

SUMMARY_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, device: torch.device) -> list[dict]:
    """Run ``model`` in eval mode; return COCO result dicts (xywh boxes in original pixels)."""
    was_training = model.training
    model.eval()
    results: list[dict] = []
    try:
        for images, targets in loader:
            outputs = model([img.to(device) for img in images])
            for out, tgt in zip(outputs, targets):
                boxes = out["boxes"].cpu()
                if boxes.numel() == 0:
                    continue
                xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
                for box, score, label in zip(xywh, out["scores"].tolist(), out["labels"].tolist()):
                    results.append(
                        {
                            "image_id": int(tgt["image_id"]),
                            "category_id": int(label),
                            "bbox": [round(v, 2) for v in box],
                            "score": round(score, 5),
                        }
                    )
    finally:
        model.train(was_training)
    return results


@dataclass
class Evaluation:
    """``metrics`` as ``coco_metrics`` returns them and ``pr_curves`` (``mar_core.eval.pr_curves``)."""

    metrics: dict[str, float]
    pr_curves: dict


def coco_evaluation(
    coco_gt: COCO, results: list[dict], class_names: list[str], image_ids: list[int] | None = None
) -> Evaluation:
    """COCOeval on ``results``: ``AP``... ``APl`` and ``AP/<class>`` in [0, 1] (-1 where COCO has
    no ground truth for that size or class), and the PR curves per class."""
    if not results:
        log.warning("evaluation: the model made no detection; every AP is 0")
        ann_ids = coco_gt.getAnnIds(imgIds=image_ids) if image_ids is not None else coco_gt.getAnnIds()
        with_truth = {category_name(class_names, a["category_id"]) for a in coco_gt.loadAnns(ann_ids)}
        return Evaluation(
            {name: 0.0 for name in SUMMARY_NAMES} | {f"AP/{c}": 0.0 for c in class_names},
            zero_pr_curves(class_names, with_truth),
        )
    with contextlib.redirect_stdout(io.StringIO()) as out:
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        if image_ids is not None:
            ev.params.imgIds = image_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    log.debug("COCOeval:\n%s", out.getvalue())
    metrics = {name: float(v) for name, v in zip(SUMMARY_NAMES, ev.stats[:6])}
    precision = ev.eval["precision"]  # T x R x K x A x M; area 'all' = 0, maxDets 100 = -1
    for k, cat_id in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        metrics[f"AP/{category_name(class_names, cat_id)}"] = float(np.mean(p)) if p.size else -1.0
    return Evaluation(metrics, pr_curves(ev, class_names))


def coco_metrics(
    coco_gt: COCO, results: list[dict], class_names: list[str], image_ids: list[int] | None = None
) -> dict[str, float]:
    """The metrics of ``coco_evaluation``."""
    return coco_evaluation(coco_gt, results, class_names, image_ids).metrics


def evaluate_model(
    model: nn.Module,
    dataset,
    device: torch.device,
    batch_size: int = 8,
    num_workers: int = 0,
    image_ids: list[int] | None = None,
) -> Evaluation:
    """``coco_evaluation`` of ``model`` on ``dataset`` (a ``DetectionDataset`` or a ``Subset`` of
    one, whose ``image_ids`` then restrict COCOeval)."""
    base = getattr(dataset, "dataset", dataset)
    loader = build_eval_loader(dataset, batch_size=max(1, batch_size), num_workers=num_workers)
    return coco_evaluation(base.coco, predict(model, loader, device), base.class_names, image_ids)


def evaluate_detector(
    model: nn.Module,
    dataset,
    device: torch.device,
    batch_size: int = 8,
    num_workers: int = 0,
    image_ids: list[int] | None = None,
) -> dict[str, float]:
    """The metrics of ``evaluate_model``."""
    return evaluate_model(model, dataset, device, batch_size, num_workers, image_ids).metrics
