"""Pretrained starts, offline: ImageNet backbone weights and whole-detector warm starts.

Nothing is ever downloaded inside a job. A backbone weights reference is either a file path or a
torchvision weights name (``"ResNet18_Weights.IMAGENET1K_V1"``), which resolves to the file
name torchvision itself caches under ``$TORCH_HOME/hub/checkpoints/`` (``torch.hub.get_dir()``):
put the file there once (``torchvision.models.resnet18(weights=...)`` on a machine with a
network writes it) and every job finds it. A missing file is an error naming the file and the
folder.

ImageNet files are classification state_dicts (``conv1.weight``, ``layer1.0.bn1.running_mean``,
..., ``fc.weight``): the trunk keys load into ``model.backbone.body`` (the trunk under the FPN,
torchvision's layout and this project's alike), the classifier keys (``fc.`` for ResNets,
``classifier.`` for MobileNetV3) are dropped, and every other key and shape must match. Their
BatchNorm statistics need a BatchNorm trunk: torchvision runs a pretrained trunk with
``FrozenBatchNorm2d`` (``model.norm: frozen_batch`` here).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import get_weight

from mar_core.errors import CheckpointError
from mar_core.models.checkpoint_io import (
    MODEL_CARD,
    MODEL_WEIGHTS,
    extract_state_dict,
    load_state_dict_strict,
    safe_load,
)
from mar_core.names import is_torchvision_weights_name
from mar_core.paths import resolve_under
from mar_core.progress import ProgressCallback, ignore_progress
from mar_core.spec import ModelSpec

log = logging.getLogger(__name__)

CLASSIFIER_PREFIXES = ("fc.", "classifier.")
TRUNK_PREFIXES = ("features.",)  # MobileNetV3 files; the detector keeps ``features`` as its body


def hub_checkpoints_dir() -> Path:
    """Where torchvision caches downloaded weights: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_weights_file(ref: str, param: str, roots: list[Path] | None = None) -> Path:
    """The file of a backbone weights reference: a torchvision weights name resolved to the file
    name torchvision caches under ``hub_checkpoints_dir()``, else ``ref`` as a path (inside
    ``roots`` when given)."""
    if not is_torchvision_weights_name(ref):
        path = resolve_under(ref, roots, param)
        if not path.is_file():
            raise CheckpointError(f"{param}: weights file not found: {path}", param=param)
        return path
    try:
        weights = get_weight(ref)
    except (ValueError, KeyError, AttributeError) as e:
        raise CheckpointError(
            f"{param}: {ref!r} is not a torchvision weights name ({e})", param=param
        ) from None
    path = hub_checkpoints_dir() / os.path.basename(urlparse(weights.url).path)
    if not path.is_file():
        raise CheckpointError(
            f"{param}: {ref} is not on this machine: put {path.name} in {path.parent} (jobs never "
            f"download; torchvision writes that file when it loads {ref} with a network)",
            param=param,
        )
    return path


def trunk_state_dict(
    state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """An ImageNet classification state_dict as the detector's trunk sees it: classifier keys
    dropped, ``features.`` stripped (MobileNetV3), ``num_batches_tracked`` kept only where the
    trunk has such buffers (BatchNorm2d has, FrozenBatchNorm2d has not)."""
    out = {}
    for key, value in state.items():
        if key.startswith(CLASSIFIER_PREFIXES):
            continue
        for prefix in TRUNK_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        if key.endswith("num_batches_tracked") and key not in expected:
            continue
        out[key] = value
    return out


def load_backbone_weights(
    model: nn.Module, ref: str, param: str = "model.backbone_weights", roots: list[Path] | None = None
) -> Path:
    """Load ImageNet weights into ``model.backbone.body``; returns the file read. A file that does
    not fit fails naming its first mismatching keys (and what to change when it is the norm)."""
    path = resolve_weights_file(ref, param, roots)
    body = model.backbone.body
    expected = body.state_dict()
    state = trunk_state_dict(extract_state_dict(safe_load(path, param), param), expected)
    if any(k.endswith("running_mean") for k in state) and not any(
        k.endswith("running_mean") for k in expected
    ):
        raise CheckpointError(
            f"{param}: {path.name} holds BatchNorm statistics but this backbone has no BatchNorm: "
            "set model.norm to frozen_batch (how torchvision runs a pretrained trunk) or batch",
            param=param,
        )
    load_state_dict_strict(body, state, param)
    log.info("backbone weights loaded from %s (%d tensors)", path, len(state))
    return path


def load_warm_start(model: nn.Module, path: Path, param: str = "model.init_checkpoint") -> None:
    """Start from a whole detector's weights (e.g. the job's own baseline run's ``model.pt``)."""
    load_state_dict_strict(model, extract_state_dict(safe_load(path, param), param), param)
    log.info("warm start from %s", path)


def warm_start_file(ref: str, roots: list[Path] | None, param: str = "model.init_checkpoint") -> Path:
    """The weights file of a warm start: a run folder's ``model.pt`` or a state_dict file."""
    path = resolve_under(ref, roots, param)
    if path.is_dir():
        if not (path / MODEL_CARD).is_file():
            raise CheckpointError(
                f"{param}: folder {ref!r} is not a run folder (no {MODEL_CARD})", param=param
            )
        path = path / MODEL_WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"{param}: {ref!r} does not exist", param=param)
    return path


def load_pretrained_start(
    model: nn.Module,
    spec: ModelSpec,
    roots: list[Path] | None = None,
    progress: ProgressCallback = ignore_progress,
) -> None:
    """Apply ``spec.backbone_weights`` then ``spec.init_checkpoint`` (paths inside ``roots``)."""
    if spec.backbone_weights:
        path = load_backbone_weights(model, spec.backbone_weights, roots=roots)
        progress({"type": "log", "level": "info", "message": f"backbone weights loaded from {path.name}"})
    if spec.init_checkpoint:
        path = warm_start_file(spec.init_checkpoint, roots)
        load_warm_start(model, path)
        progress({"type": "log", "level": "info", "message": f"warm start from {path}"})
