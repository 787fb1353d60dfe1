"""An image file as the tensor a detector reads: training, evaluation and ``mar predict`` alike.

A JPEG is decoded by torchvision's libjpeg-turbo decoder (EXIF orientation applied, CMYK and
greyscale to RGB): bit-for-bit the tensor Pillow gives, 2-2.5x faster (``mar bench
data-pipeline``). Anything else, and a JPEG it refuses (a truncated one, which Pillow repairs), is
read through ``mar_core.image_io.load_rgb``. torchvision marks its image decoders deprecated since
0.29 (superseded by TorchCodec): when they are gone, every file takes the Pillow path.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torchvision.transforms.functional import pil_to_tensor

from mar_core.image_io import load_rgb

try:
    from torchvision.io import ImageReadMode, decode_jpeg
except ImportError:  # a torchvision without its image decoders
    decode_jpeg = None

__all__ = ["read_image_tensor"]

JPEG_MAGIC = b"\xff\xd8\xff"


def _jpeg_tensor(data: bytes) -> torch.Tensor | None:
    """``3 x H x W`` uint8 of JPEG bytes, or None when torchvision cannot decode them."""
    if decode_jpeg is None or not data.startswith(JPEG_MAGIC):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the decoders' deprecation, said above
            return decode_jpeg(
                torch.frombuffer(bytearray(data), dtype=torch.uint8),
                mode=ImageReadMode.RGB,
                apply_exif_orientation=True,
            )
    except RuntimeError:  # truncated or corrupt: Pillow repairs or names it
        return None


def read_image_tensor(path: Path) -> torch.Tensor:
    """``3 x H x W`` in [0, 1], in torch's default dtype (float32 unless set otherwise), as
    displayed (EXIF orientation applied, any mode to RGB, a truncated file repaired);
    ``BadImageError`` naming the file."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        data = b""  # load_rgb reads it again and names the error
    pixels = _jpeg_tensor(data)
    if pixels is None:
        rgb, _ = load_rgb(path, data)
        pixels = pil_to_tensor(rgb)
    return pixels.to(torch.get_default_dtype()).div_(255.0)
