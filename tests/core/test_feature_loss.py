"""mask_guided_feature_loss: fg / bg normalisation on hand-computed cases; resize_to."""

import pytest
import torch

from mar_core.distill.feature_loss import mask_guided_feature_loss, resize_to


def test_hand_computed_fg_bg_normalisation():
    # level 0: B=1, C=2, 1 x 3 pixels; D = mean over channels of (T - S)^2 = [1, 4, 9]
    s0 = torch.zeros(1, 2, 1, 3, requires_grad=True)
    t0 = torch.tensor([[[[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]]]])
    m0 = torch.tensor([[[1.0, 0.5, 0.0]]])
    # level 1: B=1, C=1, 2 x 2; D = [[4, 0], [1, 1]]; mass of M = 0.25 < 1 -> divided by 1
    s1 = torch.tensor([[[[2.0, 0.0], [1.0, -1.0]]]], requires_grad=True)
    t1 = torch.zeros(1, 1, 2, 2, requires_grad=True)
    m1 = torch.tensor([[[0.25, 0.0], [0.0, 0.0]]])
    out = mask_guided_feature_loss([s0, s1], [t0, t1], [m0, m1])
    fg0, bg0 = (1 * 1 + 0.5 * 4) / 1.5, 9 / 1
    fg1, bg1 = 0.25 * 4 / 1, (0 + 1 + 1) / 3
    assert out["fg"].item() == pytest.approx((fg0 + fg1) / 2)
    assert out["bg"].item() == pytest.approx((bg0 + bg1) / 2)
    (out["fg"] + out["bg"]).backward()
    assert s0.grad.abs().sum() > 0 and s1.grad.abs().sum() > 0
    assert t1.grad is None  # the teacher is detached


def test_all_background_and_all_foreground_batches():
    s, t = torch.zeros(2, 3, 2, 2), torch.full((2, 3, 2, 2), 2.0)  # D = 4 everywhere
    out = mask_guided_feature_loss([s], [t], [torch.zeros(2, 2, 2)])
    assert out["fg"].item() == 0.0 and out["bg"].item() == pytest.approx(4.0)
    out = mask_guided_feature_loss([s], [t], [torch.ones(2, 2, 2)])
    assert out["fg"].item() == pytest.approx(4.0) and out["bg"].item() == 0.0


def test_mismatched_inputs():
    with pytest.raises(ValueError, match="levels"):
        mask_guided_feature_loss([torch.zeros(1, 2, 2, 2)], [torch.zeros(1, 2, 2, 2)], [])
    with pytest.raises(ValueError, match="B x H x W mask"):
        mask_guided_feature_loss([torch.zeros(1, 2, 2, 2)], [torch.zeros(1, 2, 2, 2)], [torch.zeros(1, 2, 3)])


def test_resize_to():
    t = torch.randn(2, 3, 8, 10)
    assert resize_to(t, (8, 10)) is t
    assert resize_to(t, torch.Size([4, 5])).shape == (2, 3, 4, 5)
    const = torch.full((1, 2, 7, 9), 3.0)
    torch.testing.assert_close(resize_to(const, (13, 5)), torch.full((1, 2, 13, 5), 3.0))
    # half-size bilinear without corner alignment averages 2 x 2 blocks
    ramp = torch.arange(16.0).reshape(1, 1, 4, 4)
    torch.testing.assert_close(resize_to(ramp, (2, 2)), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))
