"""Horizontal flip of images and boxes."""

from __future__ import annotations

import torch

from mar_core.data import hflip_boxes, random_hflip


def _sample(w: int = 10, h: int = 6):
    image = torch.zeros(3, h, w)
    image[:, 2:5, 1:4] = 1.0  # the object covers pixels x 1..3, y 2..4
    target = {"boxes": torch.tensor([[1.0, 2.0, 4.0, 5.0]]), "labels": torch.tensor([2]), "image_id": 7}
    return image, target


def test_hflip_boxes():
    boxes = torch.tensor([[1.0, 2.0, 4.0, 5.0], [0.0, 0.0, 10.0, 6.0]])
    assert hflip_boxes(boxes, 10).tolist() == [[6, 2, 9, 5], [0, 0, 10, 6]]
    assert torch.equal(hflip_boxes(hflip_boxes(boxes, 10), 10), boxes)
    assert hflip_boxes(torch.zeros(0, 4), 10).shape == (0, 4)


def test_flip_moves_box_with_pixels():
    image, target = _sample()
    images, targets = random_hflip([image], [target], p=1.0)
    x0, y0, x1, y1 = targets[0]["boxes"][0].long().tolist()
    flipped = images[0]
    assert flipped[:, y0:y1, x0:x1].min() == 1.0 and flipped.sum() == image.sum()
    assert targets[0]["labels"].tolist() == [2] and targets[0]["image_id"] == 7
    assert target["boxes"].tolist() == [[1, 2, 4, 5]] and image[:, 2, 1].sum() == 3  # inputs untouched


def test_p_zero_keeps_everything():
    image, target = _sample()
    images, targets = random_hflip([image, image], [target, target], p=0.0)
    assert all(torch.equal(i, image) for i in images)
    assert all(torch.equal(t["boxes"], target["boxes"]) for t in targets)


def test_reproducible_from_rng_state():
    image, target = _sample()
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = random_hflip([image] * 16, [target] * 16, p=0.5)[1]
    torch.set_rng_state(state)
    b = random_hflip([image] * 16, [target] * 16, p=0.5)[1]
    xs_a = [t["boxes"][0, 0].item() for t in a]
    assert xs_a == [t["boxes"][0, 0].item() for t in b]
    assert set(xs_a) == {1.0, 6.0}  # some flipped, some not
