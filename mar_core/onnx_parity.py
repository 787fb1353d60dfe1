"""Whether an ONNX export gives its torch model's detections: both run on the same images, and
each torch detection is paired with an ONNX one of the same label, nearest in box then score (not
row order: equal scores may come out in either order). Detections scoring within ``SCORE_TOL`` of
the score threshold are left out on both sides: float noise may put such a one on either side."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from mar_core.export import ONNX_OUTPUTS

__all__ = ["FLOOR_PX", "REL_TOL", "SCORE_TOL", "USABLE_BOX_PX", "Parity", "compare_detections", "onnx_parity"]

REL_TOL = 1e-3  # boxes: 1e-3 of the coordinate...
FLOOR_PX = 1.0  # ...measured against at least 1 px (a coordinate clipped to 0 has no scale of its own)
SCORE_TOL = 1e-5  # scores; float32 differences measured below 4e-7
USABLE_BOX_PX = 0.5  # a difference no drawn box shows...
USABLE_SCORE = 1e-3  # ...and no score threshold a user sets notices

Detections = dict[str, np.ndarray]  # boxes N x 4, labels N, scores N


@dataclass(frozen=True)
class Parity:
    """``compared`` torch detections paired; ``unmatched``: those of either side left unpaired."""

    images: int
    compared: int
    unmatched: int
    max_box_px: float
    max_box_rel: float
    max_score: float

    @property
    def ok(self) -> bool:
        """Within float32 noise: what an export must give on the models it was built with."""
        return self.unmatched == 0 and self.max_box_rel <= REL_TOL and self.max_score <= SCORE_TOL

    @property
    def usable(self) -> bool:
        """Within ``USABLE_BOX_PX`` and ``USABLE_SCORE``: the check of a trained model's export,
        whose input resize runs in another library (onnxruntime's against torch's interpolation,
        measured up to 0.04 px apart on 64 px images)."""
        return self.unmatched == 0 and self.max_box_px <= USABLE_BOX_PX and self.max_score <= USABLE_SCORE

    def __add__(self, other: Parity) -> Parity:
        return Parity(
            self.images + other.images,
            self.compared + other.compared,
            self.unmatched + other.unmatched,
            max(self.max_box_px, other.max_box_px),
            max(self.max_box_rel, other.max_box_rel),
            max(self.max_score, other.max_score),
        )


NONE = Parity(0, 0, 0, 0.0, 0.0, 0.0)


def _clear_of(det: Detections, threshold: float) -> Detections:
    keep = np.abs(det["scores"] - threshold) > SCORE_TOL
    return {k: v[keep] for k, v in det.items()}


def compare_detections(ref: Detections, got: Detections, threshold: float) -> Parity:
    """One image's torch detections ``ref`` against ONNX's ``got`` (greedy pairing)."""
    ref, got = _clear_of(ref, threshold), _clear_of(got, threshold)
    dist = np.abs(ref["boxes"][:, None, :] - got["boxes"][None, :, :]).max(-1).astype(np.float64)
    dist += np.abs(ref["scores"][:, None] - got["scores"][None, :])
    dist[ref["labels"][:, None] != got["labels"][None, :]] = np.inf
    pairs: list[tuple[int, int]] = []
    for i, row in enumerate(dist):
        j = int(row.argmin()) if row.size else -1
        if j >= 0 and np.isfinite(row[j]):
            pairs.append((i, j))
            dist[:, j] = np.inf
    unmatched = len(ref["boxes"]) - len(pairs) + len(got["boxes"]) - len(pairs)
    if not pairs:
        return Parity(1, 0, unmatched, 0.0, 0.0, 0.0)
    ri, gi = (np.array(side) for side in zip(*pairs))
    diff = np.abs(got["boxes"][gi] - ref["boxes"][ri])
    rel = diff / np.maximum(np.abs(ref["boxes"][ri]), FLOOR_PX)
    return Parity(
        1,
        len(pairs),
        unmatched,
        float(diff.max()),
        float(rel.max()),
        float(np.abs(got["scores"][gi] - ref["scores"][ri]).max()),
    )


def onnx_parity(model: nn.Module, onnx_path: Path, images: list[Tensor], threshold: float) -> Parity:
    """``model`` (eval mode, CPU) against ``onnx_path`` in onnxruntime on ``images`` (each
    ``3 x H x W`` in [0, 1]); ``threshold``: the score threshold both apply."""
    import onnxruntime as ort  # the optional `export` extra: only this check needs it

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    total = NONE
    for image in images:
        with torch.no_grad():
            ref = {k: v.numpy() for k, v in model([image])[0].items()}
        got = dict(zip(ONNX_OUTPUTS, session.run(None, {"image": image.numpy()})))
        total = total + compare_detections(ref, got, threshold)
    return total
