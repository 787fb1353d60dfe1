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


def test_feature_norm_channel_ignores_each_channels_offset_and_scale():
    """``feature_norm: channel`` (issue 19): MAR's feature terms on maps standardised per image
    and channel are blind to a per-channel offset and positive scale of the student, which the
    raw terms are dominated by. The terms are float32 and the std has an eps of 1e-6 (its relative
    effect eps / (2 var) ~ 1e-6 here, var ~ 1 scaled by a^2 >= 0.25): hence rel 1e-5."""
    from mar_core.distill.mar import MARLoss
    from mar_core.methods.mar import MARSpec

    gen = torch.Generator().manual_seed(0)
    t = [torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)]
    s = [torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)]
    a = torch.rand(1, 3, 1, 1, generator=gen, dtype=torch.float64) * 5 + 0.5
    b = torch.randn(1, 3, 1, 1, generator=gen, dtype=torch.float64) * 60
    boxes = [torch.tensor([[0.0, 0.0, 12.0, 10.0]]), torch.tensor([[4.0, 4.0, 8.0, 8.0]])]
    args = (boxes, [(4.0, 4.0)])

    def terms(norm, student, teacher):
        loss = MARLoss(3, 1, MARSpec(alpha=1, beta=1, gamma=1, relation_loss=False, feature_norm=norm), False)
        out = loss(student, teacher, *args, student_cls=student, teacher_cls=teacher)
        return out["fg"].item(), out["bg"].item()

    std, moved = terms("channel", s, t), terms("channel", [a * s[0] + b], t)
    assert std[0] > 0.1 and std[1] > 0.1
    assert moved == pytest.approx(std, rel=1e-5)
    assert terms("channel", [a * t[0] + b], t) == pytest.approx((0.0, 0.0), abs=1e-5)  # same content
    raw, raw_moved = terms("none", s, t), terms("none", [a * s[0] + b], t)
    assert raw_moved[0] > 10 * raw[0]  # the raw terms measure the offset


def test_standardise_is_the_population_z_score_with_its_gradient():
    """``standardise`` (two-pass variance) against ``torch.var`` in float64, values and gradients
    (float64: the two differ by round-off only, ~1e-15 here)."""
    from mar_core.distill.peers.pkd import _EPS, standardise

    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(2, 3, 5, 4, generator=gen, dtype=torch.float64) * 7 + 3).requires_grad_(True)
    ref_x = x.detach().clone().requires_grad_(True)
    ref = (ref_x - ref_x.mean((2, 3), keepdim=True)) / torch.sqrt(
        ref_x.var((2, 3), keepdim=True, correction=0) + _EPS
    )
    got = standardise(x)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    weights = torch.randn(got.shape, generator=gen, dtype=torch.float64)
    (got * weights).sum().backward()
    (ref * weights).sum().backward()
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=1e-10, atol=1e-10)
