"""Rebuild a detector from a run output folder or a torchvision-format state_dict."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from mar_core.errors import CheckpointError
from mar_core.models.checkpoint_io import (
    MODEL_CARD,
    MODEL_WEIGHTS,
    extract_state_dict,
    load_state_dict_strict,
    read_model_card,
    safe_load,
)
from mar_core.models.registry import build_detector
from mar_core.spec import ModelSpec


@dataclass
class LoadedDetector:
    model: nn.Module
    spec: ModelSpec
    num_classes: int
    class_names: list[str] | None


def load_detector(
    path: Path,
    spec: ModelSpec | None = None,
    num_classes: int | None = None,
    param: str = "teacher.checkpoint",
) -> LoadedDetector:
    """Load a detector from ``path``: a run folder (``model.json`` + ``model.pt``), a
    ``model.json`` file, or a weights file. For a bare weights file, ``spec`` and
    ``num_classes`` say what to build (a ``model.json`` beside it is used when present)."""
    path = Path(path)
    if path.is_file() and path.name == "model.json":
        path = path.parent
    if path.is_dir():
        run_dir: Path | None = path
    elif spec is None and (path.parent / MODEL_CARD).is_file():
        run_dir = path.parent
    else:
        run_dir = None
    if run_dir is not None:
        card = read_model_card(run_dir, param)
        spec = ModelSpec.model_validate(card["model"])
        num_classes = card["num_classes"]
        class_names = card.get("class_names")
        weights = path if path.is_file() else run_dir / card.get("weights", MODEL_WEIGHTS)
    else:
        if spec is None or num_classes is None:
            raise CheckpointError(
                f"{path.name} is a bare state_dict: name its architecture in the spec (teacher.model)", param
            )
        class_names, weights = None, path
    model = build_detector(spec, num_classes)
    load_state_dict_strict(model, extract_state_dict(safe_load(weights, param), param), param)
    return LoadedDetector(model, spec, num_classes, class_names)
