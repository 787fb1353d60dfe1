"""``read_image_tensor``: JPEGs through torchvision's decoder give exactly Pillow's pixels (EXIF
orientation, CMYK and greyscale included); what it refuses (a truncated JPEG) and every other
format take the Pillow path, so each accepted kind of messy file reads as before."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.functional import pil_to_tensor

from mar_core.data import image_tensor
from mar_core.data.image_tensor import read_image_tensor
from mar_core.image_io import load_rgb
from tests.image_corpus import ACCEPTED, write_kind


def pillow(path) -> torch.Tensor:
    return pil_to_tensor(load_rgb(path)[0]).float().div(255)


@pytest.mark.parametrize("kind", ACCEPTED)
def test_every_accepted_kind_reads_as_pillow_shows_it(tmp_path, kind):
    path = write_kind(tmp_path, kind, width=96, height=64, seed=3)
    got = read_image_tensor(path)
    assert got.dtype == torch.float32 and torch.equal(got, pillow(path)), kind


def test_jpegs_take_torchvision_and_a_truncated_one_falls_back(tmp_path, monkeypatch):
    calls = []
    real = image_tensor._jpeg_tensor
    monkeypatch.setattr(image_tensor, "_jpeg_tensor", lambda data: calls.append(out := real(data)) or out)
    read_image_tensor(write_kind(tmp_path, "jpeg"))
    read_image_tensor(write_kind(tmp_path, "truncated_jpeg"))
    assert calls[0] is not None and calls[1] is None  # decoded by torchvision / left to Pillow
