"""Rebuild a detector from a run output folder or a torchvision-format state_dict."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from mar_core.errors import CheckpointError
from mar_core.models.checkpoint_fit import (
    builder_hint,
    fit_batchnorm_buffers,
    guess_builders,
    infer_num_classes,
    with_keypoints_of,
)
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

CARD_SOURCE, FILE_SOURCE = "model card", "state_dict file"


@dataclass
class LoadedDetector:
    model: nn.Module
    spec: ModelSpec
    num_classes: int
    class_names: list[str] | None
    source: str = CARD_SOURCE  # CARD_SOURCE (a run folder) or FILE_SOURCE (a bare file + spec)


def load_detector(
    path: Path,
    spec: ModelSpec | None = None,
    num_classes: int | None = None,
    param: str = "teacher.checkpoint",
) -> LoadedDetector:
    """Load a detector from ``path``: a run folder (``model.json`` + ``model.pt``), a
    ``model.json`` file, or a weights file (``.pt``, ``.pth``, ``.safetensors``). For a bare
    weights file, ``spec`` says what to build (a ``model.json`` beside it is used when present)
    and ``num_classes`` defaults to the classifier's shape in the file. torchvision's layouts
    with and without BatchNorm's ``num_batches_tracked`` both load; a file that does not fit
    lists the first mismatches and, when its keys fit a torchvision builder, names it."""
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
        class_names, source = card.get("class_names"), CARD_SOURCE
        weights = path if path.is_file() else run_dir / card.get("weights", MODEL_WEIGHTS)
        state = extract_state_dict(safe_load(weights, param), param)
    else:
        state = extract_state_dict(safe_load(path, param), param)
        if spec is None:
            guesses = guess_builders(state)
            named = (
                f' (this looks like {" or ".join(guesses)}: {{"torchvision": "{guesses[0]}"}})'
                if guesses
                else ""
            )
            raise CheckpointError(
                f"{path.name} is a bare state_dict: name its architecture in the spec (teacher.model){named}",
                param,
            )
        spec = with_keypoints_of(spec, state)
        if num_classes is None:
            num_classes = infer_num_classes(spec, state, param)
        class_names, source = None, FILE_SOURCE
    model = build_detector(spec, num_classes)
    state = fit_batchnorm_buffers({k: tuple(v.shape) for k, v in model.state_dict().items()}, state)
    try:
        load_state_dict_strict(model, state, param)
    except CheckpointError as e:
        raise CheckpointError(e.message + builder_hint(spec, state), param) from None
    return LoadedDetector(model, spec, num_classes, class_names, source)
