"""An image file as the tensor a detector reads: training, evaluation and ``mar predict`` alike."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.transforms.functional import pil_to_tensor

from mar_core.image_io import load_rgb

__all__ = ["read_image_tensor"]


def read_image_tensor(path: Path) -> torch.Tensor:
    """``3 x H x W`` in [0, 1], in torch's default dtype (float32 unless set otherwise), as
    displayed (``mar_core.image_io.load_rgb``: EXIF orientation applied, any mode to RGB, a
    truncated file repaired); ``BadImageError`` naming the file."""
    rgb, _ = load_rgb(path)
    return pil_to_tensor(rgb).to(torch.get_default_dtype()).div_(255.0)
