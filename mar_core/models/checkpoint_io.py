"""Loading weights safely, and the run output format (``model.pt`` + ``model.json``).

Every ``torch.load`` here uses ``weights_only=True``: a pickle that would run code is refused
with ``UnsafeCheckpointError``, never executed. ``.safetensors`` files are read with safetensors
(tensors only, never code).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from mar_core.atomic import atomic_path, atomic_write_json
from mar_core.errors import CheckpointError, UnsafeCheckpointError
from mar_core.models.snippet import rebuild_snippet
from mar_core.models.torchvision_builders import builder_kwargs
from mar_core.spec import ModelSpec

log = logging.getLogger(__name__)

MODEL_WEIGHTS = "model.pt"
MODEL_CARD = "model.json"
MAX_LISTED_MISMATCHES = 5


def safe_load(path: str | os.PathLike, param: str | None = None) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU with errors that say what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}", param=param)
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (OSError, ValueError, SafetensorError) as e:
            raise CheckpointError(f"cannot read checkpoint {path.name}: {e}", param=param) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f"refused to load {path.name}: it holds objects that would run code when unpickled "
            f"(only tensors and plain containers are accepted): {str(e).splitlines()[0]}",
            param=param,
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read checkpoint {path.name}: {e}", param=param) from None


def extract_state_dict(obj: Any, param: str | None = None) -> dict[str, torch.Tensor]:
    """Accept a plain state_dict or the usual wrappers ``{"model": sd}`` / ``{"state_dict": sd}``."""
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            return obj
    raise CheckpointError("checkpoint holds no state_dict of tensors", param=param)


def load_state_dict_strict(
    model: nn.Module, state: dict[str, torch.Tensor], param: str | None = None
) -> None:
    """Load with every key and shape checked; the error lists the first mismatches."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    for label, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape mismatches", shapes),
    ):
        if items:
            shown = ", ".join(items[:MAX_LISTED_MISMATCHES])
            more = (
                f" (+{len(items) - MAX_LISTED_MISMATCHES} more)" if len(items) > MAX_LISTED_MISMATCHES else ""
            )
            problems.append(f"{len(items)} {label}: {shown}{more}")
    if problems:
        raise CheckpointError("checkpoint does not fit the model: " + "; ".join(problems), param=param)
    model.load_state_dict(state, strict=True)


def write_model_output(
    workdir: Path, model: nn.Module, spec: ModelSpec, class_names: list[str]
) -> dict[str, Path]:
    """Write ``model.pt`` (plain torchvision state_dict) and ``model.json`` (how to rebuild it:
    the spec for this project, ``snippet`` for torch + torchvision alone, and for a torchvision
    builder ``torchvision``: the builder and its keyword arguments)."""
    workdir.mkdir(parents=True, exist_ok=True)
    weights, card = workdir / MODEL_WEIGHTS, workdir / MODEL_CARD
    atomic_torch_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, weights)
    num_classes = len(class_names) + 1
    info = {
        "format": "mar-model/1",
        "model": spec.model_dump(mode="json"),
        "num_classes": num_classes,
        "class_names": class_names,
        "weights": MODEL_WEIGHTS,
        "torchvision_class": type(model).__name__,
        # exec(snippet) defines `model`; then model.load_state_dict(torch.load("model.pt"))
        "snippet": rebuild_snippet(spec, num_classes, model),
    }
    if spec.torchvision is not None:
        info["torchvision"] = {"builder": spec.torchvision, "kwargs": builder_kwargs(spec, num_classes)}
    atomic_write_json(card, info)
    return {"model.pt": weights, "model.json": card}


def read_model_card(run_dir: Path, param: str | None = None) -> dict[str, Any]:
    card = run_dir / MODEL_CARD
    try:
        info = json.loads(card.read_text())
        ModelSpec.model_validate(info["model"])
        info["num_classes"] = int(info["num_classes"])
        return info
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir} holds no {MODEL_CARD}", param=param) from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{card} is not a valid model card: {e}", param=param) from None


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` through a temporary file (``mar_core.atomic``)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
