"""Sample predictions of a job: a fixed handful of validation images with the detector's boxes
drawn (``mar_core.predict.draw_detections``), written as PNG artifacts ``samples/<who>-<n>.png``
(``samples/step-<N>/<who>-<n>.png`` for an evaluation before the last)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from mar_core.data.dataset import DetectionDataset
from mar_core.predict import draw_detections, predict, save_image

log = logging.getLogger(__name__)

SAMPLES_DIR = "samples"
SAMPLE_COUNT = 4
SAMPLE_SCORE_THRESHOLD = 0.3


def sample_indices(size: int, count: int = SAMPLE_COUNT) -> list[int]:
    """``count`` indices spread evenly over a dataset of ``size`` images (all when fewer)."""
    if size <= count:
        return list(range(size))
    return [round(i * (size - 1) / (count - 1)) if count > 1 else 0 for i in range(count)]


def draw_samples(
    model: nn.Module,
    dataset: DetectionDataset,
    indices: Sequence[int],
    out_dir: Path,
    who: str,
    class_names: Sequence[str] | None,
    device: torch.device | None = None,
    score_threshold: float = SAMPLE_SCORE_THRESHOLD,
    step: int | None = None,
) -> dict[str, Path]:
    """Draw ``model``'s detections on ``dataset``'s images ``indices`` into ``out_dir`` (its
    ``step-<step>`` folder when ``step`` is given); return ``{artifact name: path}`` (names
    ``samples/[step-<step>/]<who>-<n>.png``, n from 1)."""
    folder = "" if step is None else f"step-{step}/"
    images = [dataset.load_image(i) for i in indices]
    detections = predict(model, images, score_threshold, device=device)
    (out_dir / folder).mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for n, (image, det) in enumerate(zip(images, detections), start=1):
        path = out_dir / folder / f"{who}-{n}.png"
        save_image(draw_detections(image, det, class_names), path)
        written[f"{SAMPLES_DIR}/{folder}{path.name}"] = path
    log.info("%s: %d sample predictions -> %s", who, len(written), out_dir / folder)
    return written
