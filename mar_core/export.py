"""Export a trained detector to ONNX and TorchScript, files that load without this project.

``export_detector(run_dir_or_model, out_dir, formats)`` writes:

- ``model.onnx``: input ``image``, one ``3 x H x W`` float image in [0, 1], any height and width
  (dynamic axes; the model's own transform resizes and normalises it, as in torch). Outputs
  ``boxes`` (``N x 4`` float, x1 y1 x2 y2 in the input image's pixels), ``labels`` (``N`` int64,
  label ``k`` is ``class_names[k - 1]``) and ``scores`` (``N`` float), best first. One image per
  call: torchvision's detectors take a list of images, which ONNX fixes to the length traced, so
  a batch is a loop over images (as in torchvision's own ONNX tests). Its ``metadata_props``
  hold ``class_names`` and the model spec (JSON).
- ``model.torchscript.pt``: ``torch.jit.load(path)(images)`` with ``images`` a list of
  ``3 x H x W`` float tensors returns a list of ``{"boxes", "labels", "scores"}`` dicts, as the
  eager torchvision model does in eval mode (a scripted torchvision detector itself returns a
  ``(losses, detections)`` tuple; the wrapper returns the detections). Loading needs ``torch``
  and ``import torchvision`` (for its ``nms`` / ``roi_align`` operators), not this project. The
  model card travels as the extra file ``model.json``
  (``torch.jit.load(path, _extra_files={"model.json": ""})``). One difference from eager torch
  is torchvision's: scripted, its transform computes the resize scale in float32, so where
  ``side * scale`` should be a whole number and float32 rounds the scale down, the resized
  image is 1 px smaller (76 x 100 at max_size 64: 48 x 63, eager 48 x 64) and the detections
  differ slightly. ONNX follows eager torch there.

The ONNX file is written by torch's TorchScript-based exporter (``dynamo=False``). torch 2.14's
default exporter (``dynamo=True``, through ``torch.export``) fails on all three detector
families: the post-processing has data-dependent shapes (score filtering, top-k over a variable
number of candidates, NMS) that ``torch.export`` cannot guard on
(``GuardOnDataDependentSymNode``), after minutes of tracing. The TorchScript-based exporter
traces the eager model once, exports each family in seconds, and is the one torchvision's ONNX
tests use; torch marks it deprecated (a ``DeprecationWarning``, silenced here) but it is present
and tested in 2.14. ``torch.jit.script`` is likewise deprecated and still what torchvision's
detection models are written for.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor, nn

from mar_core.atomic import atomic_path
from mar_core.errors import SpecError
from mar_core.models.checkpoint_io import MODEL_CARD
from mar_core.models.loading import load_detector
from mar_core.models.thresholds import detector_settings
from mar_core.names import EXPORT_FORMATS

log = logging.getLogger(__name__)

EXPORT_FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}
ONNX_OPSET = 17  # RoIAlign with the `aligned` attribute needs >= 16; onnxruntime runs 17 everywhere
ONNX_INPUTS = ("image",)
ONNX_OUTPUTS = ("boxes", "labels", "scores")


class OnnxDetector(nn.Module):
    """One image in, ``(boxes, labels, scores)`` out: the signature the ONNX graph gets.

    Both wrappers are put in eval mode before export: the ONNX exporter restores the wrapper's
    mode afterwards, recursively, so a wrapper left in training mode would switch the wrapped
    detector to training mode too."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.model = detector

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        det = self.model([image])[0]
        return det["boxes"], det["labels"], det["scores"]


class ScriptedDetector(nn.Module):
    """Scripted, a torchvision detector returns ``(losses, detections)``; this returns the detections,
    so the scripted file is called like the eager model in eval mode."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.model = detector

    def forward(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        return self.model(images)[1]


def check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    """``formats`` without duplicates, in the order given; an unknown one is a ``SpecError``."""
    chosen = tuple(dict.fromkeys(formats))
    unknown = [f for f in chosen if f not in EXPORT_FORMATS]
    if unknown or not chosen:
        raise SpecError(
            f"unknown export format {', '.join(map(repr, unknown))}; valid: {', '.join(EXPORT_FORMATS)}"
            if unknown
            else f"no export format given; valid: {', '.join(EXPORT_FORMATS)}",
            param="export",
        )
    return chosen


def export_detector(
    model_or_run_dir: nn.Module | str | Path,
    out_dir: str | Path,
    formats: Iterable[str] = EXPORT_FORMATS,
    example_image_size: int | tuple[int, int] | None = None,
    score_threshold: float | None = None,
    class_names: list[str] | None = None,
) -> dict[str, Path]:
    """Write ``model.onnx`` and/or ``model.torchscript.pt`` into ``out_dir``; return ``{format: path}``.

    ``model_or_run_dir``: a torchvision detector, or a run folder (``model.json`` + ``model.pt``),
    whose model card gives the class names. ``example_image_size`` (``(H, W)`` or a side) is the
    image the ONNX exporter traces with (default: the model's ``min_size`` square); the exported
    graph takes any size. ``score_threshold`` replaces the model's own (0.05 by default; scores
    above it are kept) in the exported files. The model given is neither changed nor moved (a CPU
    copy is exported)."""
    chosen = check_formats(formats)
    if score_threshold is not None and not 0.0 <= score_threshold <= 1.0:
        raise SpecError(f"score threshold must be in [0, 1], got {score_threshold}", param="score_threshold")
    card: dict = {}
    if isinstance(model_or_run_dir, nn.Module):
        model = model_or_run_dir
    else:
        run_dir = Path(model_or_run_dir)
        if not run_dir.is_dir():
            raise SpecError(f"run folder not found: {run_dir}", param="run_dir")
        if not (run_dir / MODEL_CARD).is_file():
            raise SpecError(f"{run_dir} is not a run folder: it holds no {MODEL_CARD}", param="run_dir")
        loaded = load_detector(run_dir, param="run_dir")
        model = loaded.model
        card = {"model": loaded.spec.model_dump(mode="json"), "num_classes": loaded.num_classes}
        class_names = class_names if class_names is not None else loaded.class_names
    if class_names is not None:
        card["class_names"] = list(class_names)

    model = copy.deepcopy(model).cpu().eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    with detector_settings(model, score_thresh=score_threshold):
        for fmt in chosen:
            path = out_dir / EXPORT_FILES[fmt]
            if fmt == "onnx":
                _export_onnx(model, path, _example_image(model, example_image_size), card)
            else:
                _export_torchscript(model, path, card)
            log.info("exported %s: %s (%.1f MB)", fmt, path, path.stat().st_size / 2**20)
            written[fmt] = path
    return written


def _example_image(model: nn.Module, size: int | tuple[int, int] | None) -> Tensor:
    if size is None:
        min_size = getattr(getattr(model, "transform", None), "min_size", (512,))
        size = int(min_size[-1] if isinstance(min_size, (tuple, list)) else min_size)
    h, w = (size, size) if isinstance(size, int) else size
    if h < 16 or w < 16:
        raise SpecError(
            f"example image size must be at least 16 x 16, got {h} x {w}", param="example_image_size"
        )
    # A fixed, textured image: the tracer records the ops, the values only need to give detections.
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(0))


def _export_onnx(model: nn.Module, path: Path, image: Tensor, card: dict) -> None:
    try:
        # Local: onnx is the optional `export` extra (pip install 'mar-distill[export]'),
        # needed only here to check the graph and to store the model card in its metadata.
        import onnx
    except ImportError:
        raise SpecError(
            "ONNX export needs the onnx package: pip install 'mar-distill[export]'", param="export"
        ) from None
    dynamic = {"image": {1: "height", 2: "width"}} | {name: {0: "detections"} for name in ONNX_OUTPUTS}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # Known, harmless warnings of this exporter on torchvision's detectors (its ONNX tests
        # see the same): the exporter and torch.jit.script (used by torchvision's ops while
        # tracing) are deprecated; the tracer notes each Python number it records as a constant
        # and each torch.tensor(tensor) in torchvision's transform; advanced indexing exports as
        # ONNX Gather/Scatter.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="To copy construct from a tensor")
        warnings.filterwarnings("ignore", message="Exporting aten::index operator of advanced indexing")
        torch.onnx.export(
            OnnxDetector(model).eval(),
            (image,),
            str(tmp),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=list(ONNX_INPUTS),
            output_names=list(ONNX_OUTPUTS),
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )
        graph = onnx.load(str(tmp))
        onnx.checker.check_model(graph)
        meta = {
            "format": "mar-onnx/1",
            "input": "image: 3 x H x W float in [0, 1]",
            "outputs": "boxes: N x 4 (x1, y1, x2, y2 px), labels: N int64 (k is class_names[k-1]), scores: N",
        }
        meta |= {k: json.dumps(v) for k, v in card.items()}
        for key, value in meta.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.save(graph, str(tmp))


def _export_torchscript(model: nn.Module, path: Path, card: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.script is deprecated"
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(ScriptedDetector(model).eval())
        with atomic_path(path) as tmp:
            torch.jit.save(scripted, str(tmp), _extra_files={MODEL_CARD: json.dumps(card)})
