"""Run a detector on image files: drawn images and a COCO results JSON (``mar predict``).

``predict_to_folder(weights, inputs, out_dir)`` writes into ``out_dir``:

- each input image with its boxes, class names and scores drawn (torchvision's
  ``draw_bounding_boxes``), under the input's name; JPEG inputs stay JPEG, others become PNG;
- ``detections.json``: the detections as COCO results,
  ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]`` in the input image's pixels;
- ``images.json``: the COCO file those results refer to, ``{"images": [{"id", "file_name",
  "width", "height"}], "categories": [{"id", "name"}], "annotations": []}``, so
  ``COCO("images.json").loadRes("detections.json")`` loads them (pycocotools cannot load an
  empty results list: with no detection at all, ``detections.json`` is ``[]``).

Image ids are the inputs' positions, from 1 (files in the order given, a folder's images sorted
by name); category ``k`` is the detector's label ``k``, named ``class_names[k - 1]`` from the
model card. Images are read as ``DetectionDataset`` reads them for training
(``mar_core.data.image_tensor.read_image_tensor``: EXIF orientation applied, RGB, a truncated file repaired), and
the boxes are in the pixels of the image as displayed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torchvision.utils import draw_bounding_boxes

from mar_core.atomic import atomic_path, atomic_write_json
from mar_core.data.image_tensor import read_image_tensor
from mar_core.errors import BadImageError, SpecError
from mar_core.models.checkpoint_io import MODEL_CARD
from mar_core.models.loading import load_detector
from mar_core.models.thresholds import detector_settings, score_threshold_of

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
JPEG_SUFFIXES = (".jpg", ".jpeg")
RESULTS_FILE = "detections.json"
IMAGES_FILE = "images.json"
DEFAULT_SCORE_THRESHOLD = 0.5
# Distinct colours for up to 12 classes, then repeated (colour-blind friendly "tab" palette).
PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (255, 187, 120),
    (152, 223, 138),
)


@dataclass
class PredictionFiles:
    """What ``predict_to_folder`` wrote."""

    results: Path  # detections.json
    images: Path  # images.json
    drawn: list[Path] = field(default_factory=list)
    detections: int = 0


def find_images(inputs: Iterable[str | Path]) -> list[Path]:
    """Image files named in ``inputs``: files as given, folders' images (not recursive) sorted by
    name. A missing path, a file that is not an image, or no image at all is a ``SpecError``."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise SpecError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}", param="images")
            found.extend(images)
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise SpecError(f"not an image file ({', '.join(IMAGE_SUFFIXES)}): {path}", param="images")
            found.append(path)
        else:
            raise SpecError(f"image or folder not found: {path}", param="images")
    if not found:
        raise SpecError("no images given", param="images")
    return found


def load_image(path: Path) -> Tensor:
    """``3 x H x W`` float in [0, 1], read like a training image (``DetectionDataset.load_image``)."""
    try:
        return read_image_tensor(path)
    except BadImageError as e:
        raise SpecError(e.message, param="images") from None


def check_score_threshold(score_threshold: float) -> float:
    if not 0.0 <= score_threshold <= 1.0:
        raise SpecError(f"score threshold must be in [0, 1], got {score_threshold}", param="score_threshold")
    return float(score_threshold)


@torch.no_grad()
def predict(
    model: nn.Module,
    images: Sequence[Tensor],
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    batch_size: int = 4,
    device: torch.device | str | None = None,
) -> list[dict[str, Tensor]]:
    """``model``'s detections on ``images`` (``3 x H x W`` floats in [0, 1]): one
    ``{"boxes" (x1 y1 x2 y2 px), "labels", "scores"}`` dict per image, on the CPU, scores at
    least ``score_threshold``. A threshold below the model's own (0.05 by default) lowers it for
    the call. Label 0 is the background (``class_names[k - 1]`` names label ``k``): RetinaNet and
    FCOS can still output it, rarely once trained, and it is dropped. The model runs in eval mode
    on ``device`` (default: where it is) and is put back in the mode it had."""
    check_score_threshold(score_threshold)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    results: list[dict[str, Tensor]] = []
    try:
        # The model keeps scores strictly above its own threshold, compared in float32: set it to the
        # float32 just below ours (when lower than the model's), so a score equal to ours is kept.
        below = float(np.nextafter(np.float32(score_threshold), np.float32(-1.0)))
        with detector_settings(model, score_thresh=min(below, score_threshold_of(model))):
            for start in range(0, len(images), max(1, batch_size)):
                batch = [img.to(device) for img in images[start : start + batch_size]]
                for out in model(batch):
                    keep = (out["scores"] >= score_threshold) & (out["labels"] > 0)
                    results.append({k: out[k][keep].cpu() for k in ("boxes", "labels", "scores")})
    finally:
        model.train(was_training)
    return results


def class_name(class_names: Sequence[str] | None, label: int) -> str:
    """The name of detector label ``label`` (``class_names[label - 1]``; ``class_<label>`` when unknown)."""
    if class_names is not None and 0 < label <= len(class_names):
        return class_names[label - 1]
    return f"class_{label}"


def coco_categories(class_names: Sequence[str] | None, num_classes: int | None = None) -> list[dict]:
    """COCO ``categories``: id ``k`` (the detector's label) named ``class_names[k - 1]``.
    ``num_classes`` (background included) gives the count when there are no names."""
    count = len(class_names) if class_names is not None else max(0, (num_classes or 1) - 1)
    return [
        {"id": k, "name": class_name(class_names, k), "supercategory": "object"} for k in range(1, count + 1)
    ]


def coco_results(
    detections: Sequence[dict[str, Tensor]], image_ids: Sequence[int] | None = None
) -> list[dict]:
    """COCO results (``bbox`` as x, y, w, h) of ``detections``; ``image_ids`` default to 1, 2, ..."""
    ids = list(image_ids) if image_ids is not None else list(range(1, len(detections) + 1))
    if len(ids) != len(detections):
        raise ValueError(f"{len(ids)} image ids for {len(detections)} images")
    rows: list[dict] = []
    for image_id, det in zip(ids, detections):
        boxes = det["boxes"].detach().cpu().to(torch.float64)
        xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
        for box, label, score in zip(xywh, det["labels"].tolist(), det["scores"].tolist()):
            rows.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(label),
                    "bbox": [round(v, 2) for v in box],
                    "score": round(float(score), 5),
                }
            )
    return rows


def draw_detections(image: Tensor, detection: dict[str, Tensor], class_names: Sequence[str] | None) -> Tensor:
    """``image`` (``3 x H x W``, float in [0, 1] or uint8) with each box, its class name and score drawn;
    returns ``uint8``."""
    if image.dtype != torch.uint8:
        image = (image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    boxes = detection["boxes"].detach().cpu()
    if boxes.numel() == 0:
        return image
    labels = detection["labels"].tolist()
    texts = [
        f"{class_name(class_names, lab)} {score:.2f}"
        for lab, score in zip(labels, detection["scores"].tolist())
    ]
    colours = [PALETTE[(lab - 1) % len(PALETTE)] for lab in labels]
    width = max(1, round(min(image.shape[-2:]) / 200))
    return draw_bounding_boxes(image, boxes, labels=texts, colors=colours, width=width)


def save_image(image: Tensor, path: Path) -> None:
    """Write a ``3 x H x W`` uint8 image; the format follows ``path``'s suffix."""
    options = {"quality": 95} if path.suffix.lower() in JPEG_SUFFIXES else {}
    with atomic_path(path, suffix=path.suffix) as tmp:  # the temporary name keeps the suffix: Pillow's format
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp, **options)


def output_names(image_paths: Sequence[Path], out_dir: Path) -> list[Path]:
    """Where each drawn image goes: its name in ``out_dir`` (JPEG stays JPEG, others PNG); a name
    used twice gets ``-2``, ``-3``...; never an input's own path."""
    inputs = {p.resolve() for p in image_paths}
    taken: set[str] = set()
    names: list[Path] = []
    for path in image_paths:
        suffix = path.suffix.lower() if path.suffix.lower() in JPEG_SUFFIXES else ".png"
        stem, n = path.stem, 1
        name = f"{stem}{suffix}"
        while name in taken:
            n += 1
            name = f"{stem}-{n}{suffix}"
        taken.add(name)
        target = out_dir / name
        if target.resolve() in inputs:
            raise SpecError(
                f"--out {out_dir} would overwrite the input image {target}; choose another folder",
                param="out",
            )
        names.append(target)
    return names


def predict_to_folder(
    weights: str | Path,
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
) -> PredictionFiles:
    """Load the detector of ``weights`` (a run folder, its ``model.json``, or a weights file with
    ``model.json`` beside it), run it on ``inputs`` (image files and folders) and write the drawn
    images, ``detections.json`` and ``images.json`` into ``out_dir`` (see the module docstring)."""
    check_score_threshold(score_threshold)
    weights = Path(weights)
    if not weights.exists():
        raise SpecError(f"weights or run folder not found: {weights}", param="weights")
    card_dir = weights if weights.is_dir() else weights.parent
    if not (card_dir / MODEL_CARD).is_file():
        raise SpecError(
            f"no {MODEL_CARD} in {card_dir}: predict needs a run folder (model.json + model.pt) "
            "or a weights file with its model.json beside it",
            param="weights",
        )
    image_paths = find_images(inputs)
    out_dir = Path(out_dir)
    targets = output_names(image_paths, out_dir)
    loaded = load_detector(weights, param="weights")
    model = loaded.model.to(device)
    class_names = loaded.class_names

    files = PredictionFiles(results=out_dir / RESULTS_FILE, images=out_dir / IMAGES_FILE)
    out_dir.mkdir(parents=True, exist_ok=True)
    image_rows: list[dict] = []
    results: list[dict] = []
    step = max(1, batch_size)
    for start in range(0, len(image_paths), step):
        paths = image_paths[start : start + step]
        images = [load_image(p) for p in paths]
        detections = predict(model, images, score_threshold, batch_size=step, device=device)
        ids = list(range(start + 1, start + 1 + len(paths)))
        results.extend(coco_results(detections, ids))
        for image_id, path, image, det, target in zip(
            ids, paths, images, detections, targets[start : start + step]
        ):
            save_image(draw_detections(image, det, class_names), target)
            files.drawn.append(target)
            image_rows.append(
                {
                    "id": image_id,
                    "file_name": str(path),
                    "width": int(image.shape[-1]),
                    "height": int(image.shape[-2]),
                    "drawn": target.name,
                }
            )
            log.debug("%s: %d detections -> %s", path, len(det["scores"]), target)
    atomic_write_json(files.results, results)
    atomic_write_json(
        files.images,
        {
            "images": image_rows,
            "categories": coco_categories(class_names, loaded.num_classes),
            "annotations": [],
        },
    )
    files.detections = len(results)
    log.info(
        "predict: %d images, %d detections at score >= %g -> %s",
        len(image_paths),
        len(results),
        score_threshold,
        out_dir,
    )
    return files
