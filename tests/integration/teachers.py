"""A teacher checkpoint for the service's distill jobs: a torchvision-layout state_dict."""

from __future__ import annotations

from pathlib import Path


def write_teacher(checkpoint_root: Path, model: dict, name: str) -> Path:
    """A state_dict of ``model`` (3 classes + background, untrained) under the checkpoint root."""
    import torch

    from mar_core.models.registry import build_detector
    from mar_core.spec import ModelSpec

    path = checkpoint_root / f"teacher-{name}.pt"
    torch.save(build_detector(ModelSpec.model_validate(model), 4).state_dict(), path)
    return path
