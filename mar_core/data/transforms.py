"""Training-time augmentation on batches (resizing is the detector transform's job)."""

from __future__ import annotations

from typing import Any

import torch


def hflip_boxes(boxes: torch.Tensor, width: int) -> torch.Tensor:
    """Mirror xyxy boxes (``N x 4``, absolute pixels) in an image ``width`` pixels wide."""
    flipped = boxes.clone()
    flipped[:, 0] = width - boxes[:, 2]
    flipped[:, 2] = width - boxes[:, 0]
    return flipped


def random_hflip(
    images: list[torch.Tensor], targets: list[dict[str, Any]], p: float
) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    """Flip each image (``3 x H x W``) and its boxes left-right with probability ``p``.

    Draws exactly one number per image from torch's global RNG (whatever ``p``), so restoring
    ``torch.get_rng_state()`` reproduces the flips. Inputs are not modified; other target keys
    are passed through unchanged.
    """
    if len(images) != len(targets):
        raise ValueError(f"{len(images)} images but {len(targets)} targets")
    return hflip_where(images, targets, torch.rand(len(images)) < p)


def hflip_where(
    images: list[torch.Tensor], targets: list[dict[str, Any]], flip: torch.Tensor
) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    """Flip image ``i`` (``3 x H x W``) and its boxes where ``flip[i]`` (bool, one per image); a
    flipped image's target says so (``"hflip": True``: the teacher cache's key)."""
    out_images, out_targets = [], []
    for image, target, do in zip(images, targets, flip.tolist()):
        if do:
            target = {**target, "boxes": hflip_boxes(target["boxes"], image.shape[-1]), "hflip": True}
            image = image.flip(-1)
        out_images.append(image)
        out_targets.append(target)
    return out_images, out_targets
