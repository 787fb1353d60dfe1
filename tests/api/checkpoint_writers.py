"""Checkpoint files for upload tests, written with the real torch (the API never imports it):
a torchvision-layout state_dict in the zip format or the legacy one, and a pickle that runs code."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
import torchvision


def state_dict() -> dict[str, torch.Tensor]:
    """A real torchvision state_dict (BatchNorm counters, ``_metadata`` and all), 1.5 M parameters."""
    return torchvision.models.mobilenet_v3_small(num_classes=2).state_dict()


def tiny_checkpoint() -> bytes:
    """The smallest real checkpoint: ``torch.save`` of one tensor in a dict."""
    out = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, out)
    return out.getvalue()


class RunsCode:
    """Unpickling it runs ``touch marker`` (``os.system``): what a malicious checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def save(obj: object, path: Path, legacy: bool = False) -> Path:
    """``torch.save`` to ``path`` (``legacy``: the pre-1.6 format, several pickles in a row)."""
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path
