"""Peer losses on small cases checked against independent element-by-element formulas."""

import math

import pytest
import torch
from torch import nn

from mar_core import names
from mar_core.distill import KDLoss, build_kd_loss, build_peer
from mar_core.distill.kd_loss import loss_class
from mar_core.distill.peers.mgd import MGDLoss
from mar_core.methods import METHODS
from mar_core.methods.fgd import FGDSpec
from mar_core.methods.mar import MARSpec

PEERS = [m for m in METHODS if m != "mar"]  # every method but MAR: the peers and MAR's variants
# the peers that read the FPN outputs only (the head ones: tests/core/test_head_peers.py)
FPN_PEERS = [m for m in PEERS if not (loss_class(m).uses_cls_tower or loss_class(m).uses_head)]

STRIDES = [(4.0, 4.0), (8.0, 8.0)]  # an 8 x 8 padded batch: levels 2 x 2 and 1 x 1


def pair(seed, batch=1, channels=2, shapes=((2, 2), (1, 1)), grad=True):
    gen = torch.Generator().manual_seed(seed)
    s = [torch.randn(batch, channels, *hw, generator=gen).requires_grad_(grad) for hw in shapes]
    t = [torch.randn(batch, channels, *hw, generator=gen) for hw in shapes]
    return s, t


def build(method, channels=2, levels=2, two_stage=False, **spec):
    return build_peer(method, channels, levels, METHODS[method].spec(**spec), two_stage)


def softmax(xs, temp=1.0):
    m = max(xs)
    e = [math.exp((x - m) / temp) for x in xs]
    return [v / sum(e) for v in e]


# ---------------------------------------------------------------- registry


def test_registry_matches_names_and_rejects_unknown():
    assert PEERS == list(names.DISTILL_METHODS[1:])
    compared = [m for m in PEERS if METHODS[m].spec.VARIANT_OF is None]
    assert compared == [
        "feature_mse",
        "fgd",
        "mgd",
        "pkd",
        "cwd",
        "pkd_head",
        "cwd_head",
        "logit_kd",
        "crosskd",
    ]
    assert {m: METHODS[m].spec.VARIANT_OF for m in PEERS if m not in compared} == {"mar_cross": "mar"}
    with pytest.raises(ValueError, match="mar, feature_mse, fgd, mgd, pkd, cwd, pkd_head"):
        build_peer("kd", 2, 1, MARSpec(), False)
    with pytest.raises(ValueError, match="got the spec of method 'mar'"):
        build_peer("fgd", 2, 1, MARSpec(), False)


@pytest.mark.parametrize(
    "method", [m for m in METHODS if not loss_class(m).uses_head]
)  # heads: test_head_peers
def test_every_registered_method_builds_its_loss_module_with_the_terms_its_spec_weights(method):
    torch.manual_seed(0)
    spec = METHODS[method].spec()
    # a peer at the classification tower adapts the student's tower (3 channels) to the teacher's (5)
    at_tower = method != "mar" and loss_class(method).uses_cls_tower
    loss = build_kd_loss(
        spec, 5 if at_tower else 4, 2, two_stage=False, student_channels=3 if at_tower else None
    )
    assert isinstance(loss, KDLoss) and loss.method == method
    s, t = pair(0, batch=2, channels=5 if at_tower else 4, shapes=((4, 4), (2, 2)))
    cls = {
        "student_cls": pair(1, 2, 3, ((4, 4), (2, 2)))[0],
        "teacher_cls": pair(2, 2, 5, ((4, 4), (2, 2)))[1],
    }
    out = loss(
        s,
        t,
        [torch.tensor([[0.0, 0.0, 6.0, 5.0]]), torch.zeros(0, 4)],
        STRIDES,
        **(cls if loss.uses_cls_tower else {}),
    )
    assert set(out) == set(spec.TERM_WEIGHTS)  # what ``mar bench calibrate`` reports, by weight field
    assert all(torch.isfinite(v) for v in out.values())
    assert set(spec.TERM_WEIGHTS.values()) <= spec.own_fields()


@pytest.mark.parametrize("method", sorted(FPN_PEERS))
def test_named_terms_gradients_and_shape_checks(method):
    torch.manual_seed(0)
    peer = build(method, channels=4)
    if method == "fgd":  # GcBlocks start as the identity; make every parameter matter
        for block in [*peer.gc_student, *peer.gc_teacher]:
            nn.init.normal_(block.transform[-1].weight, std=0.5)
    s, t = pair(0, batch=2, channels=4, shapes=((4, 4), (2, 2)))
    for f in t:
        f.requires_grad_(True)
    out = peer(s, t, [torch.tensor([[0.0, 0.0, 6.0, 5.0]]), torch.zeros(0, 4)], STRIDES)
    assert out and all(k.startswith(method + "/") for k in out)
    assert all(v.dim() == 0 and v.dtype == torch.float32 and torch.isfinite(v) for v in out.values())
    sum(out.values()).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in s)
    assert all(f.grad is None for f in t)
    for name, p in peer.named_parameters():
        assert p.grad is not None, name
        if not name.endswith("conv_mask.bias"):  # a softmax ignores a shift: exactly 0 in theory
            assert p.grad.abs().sum() > 0, name
    with pytest.raises(ValueError, match="levels"):
        peer(s[:1], t[:1], [torch.zeros(0, 4)] * 2, STRIDES[:1])
    with pytest.raises(ValueError, match="B x 4 x H x W"):
        peer([torch.zeros(2, 3, 4, 4), s[1]], t, [torch.zeros(0, 4)] * 2, STRIDES)


@pytest.mark.parametrize("method", sorted(FPN_PEERS))
def test_a_one_pixel_level_gives_finite_gradients(method):
    """P7 of a 128 px image is 1 x 1: zero variance over its pixels must not make NaN gradients
    (PKD's sqrt(var) did, on the first step of the cpu benchmark)."""
    torch.manual_seed(0)
    s, t = pair(2, batch=2, channels=4, shapes=((2, 2), (1, 1)))
    out = build(method, channels=4)(s, t, [torch.tensor([[0.0, 0.0, 6.0, 5.0]]), torch.zeros(0, 4)], STRIDES)
    total = sum(out.values())
    assert torch.isfinite(total)
    total.backward()
    assert all(torch.isfinite(f.grad).all() for f in s if f.grad is not None)


@pytest.mark.parametrize("method", ["feature_mse", "pkd", "cwd", "fgd"])
def test_zero_when_student_equals_teacher(method):
    _, t = pair(1, batch=2, channels=4, shapes=((4, 4), (2, 2)))
    out = build(method, channels=4)(t, t, [torch.tensor([[1.0, 1.0, 5.0, 7.0]]), torch.zeros(0, 4)], STRIDES)
    for name, value in out.items():
        assert value.item() == pytest.approx(0.0, abs=1e-6), name


# ---------------------------------------------------------------- feature_mse, pkd, cwd


def test_feature_mse_hand_computed():
    s = [torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]]]), torch.zeros(1, 2, 1, 1)]
    t = [torch.zeros(1, 2, 2, 2), torch.tensor([[[[2.0]], [[0.0]]]])]
    out = build("feature_mse", loss_weight=0.5)(s, t, [torch.zeros(0, 4)], STRIDES)
    assert out["feature_mse/mse"].item() == pytest.approx(0.5 * ((1 + 4 + 9 + 16) / 8 + 4 / 2))


def pearson(a, b):
    a, b = a - a.mean(), b - b.mean()
    return (a * b).sum() / (a.norm() * b.norm())


def test_pkd_is_one_minus_pearson():
    s, t = pair(2, batch=2, channels=3, shapes=((3, 4), (2, 2)))
    out = build("pkd", channels=3, loss_weight=2.0)(s, t, [torch.zeros(0, 4)] * 2, STRIDES)
    expected = sum(
        sum(1 - pearson(sl[b, c].detach(), tl[b, c]) for b in range(2) for c in range(3)) / 6
        for sl, tl in zip(s, t)
    )
    assert out["pkd/pearson"].item() == pytest.approx(2.0 * expected.item(), rel=1e-5)
    # affine maps of the teacher (positive scale) cost nothing, a negated teacher costs 2 per level
    lin = [3 * f + 1 for f in t[:1]]
    neg = [-f for f in t[:1]]
    assert build("pkd", channels=3, levels=1)(lin, t[:1], [], STRIDES)["pkd/pearson"].item() == pytest.approx(
        0, abs=1e-5
    )
    assert build("pkd", channels=3, levels=1)(neg, t[:1], [], STRIDES)["pkd/pearson"].item() == pytest.approx(
        2, abs=1e-5
    )


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_cwd_hand_computed(tau):
    s, t = pair(3, batch=2, channels=2, shapes=((2, 2), (1, 3)))
    out = build("cwd", temperature=tau, loss_weight=3.0)(s, t, [torch.zeros(0, 4)] * 2, STRIDES)
    expected = 0.0
    for sl, tl in zip(s, t):
        b, c = sl.shape[:2]
        kl = 0.0
        for i in range(b):
            for j in range(c):
                ps = softmax(sl[i, j].flatten().tolist(), tau)
                pt = softmax(tl[i, j].flatten().tolist(), tau)
                kl += sum(q * math.log(q / p) for p, q in zip(ps, pt))
        expected += tau**2 * kl / (b * c)
    assert out["cwd/kl"].item() == pytest.approx(3.0 * expected, rel=1e-5)


# ---------------------------------------------------------------- mgd


def identity_generator(peer):
    """conv - ReLU - conv with identity 3x3 kernels: G(x) = relu(x)."""
    for gen in peer.generators:
        for conv in (gen[0], gen[2]):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
            with torch.no_grad():
                for c in range(conv.weight.shape[0]):
                    conv.weight[c, c, 1, 1] = 1.0


def test_mgd_hand_computed_with_the_same_random_mask():
    peer = build("mgd", loss_weight=0.1)
    identity_generator(peer)
    s, t = pair(4, batch=2, channels=2, shapes=((2, 2), (1, 1)))
    torch.manual_seed(123)
    keep = [(torch.rand(2, 1, *f.shape[2:]) >= 0.65).float() for f in s]
    expected = sum(((torch.relu(f * k) - g) ** 2).sum().item() / 2 for f, k, g in zip(s, keep, t))
    torch.manual_seed(123)
    out = peer(s, t, [torch.zeros(0, 4)] * 2, STRIDES)
    assert out["mgd/generation"].item() == pytest.approx(0.1 * expected, rel=1e-6)


def test_mgd_ratio_defaults_and_mask_statistics():
    assert build("mgd").ratio == 0.65 and build("mgd", two_stage=True).ratio == 0.45
    assert build("mgd", two_stage=True, mgd_ratio=0.3).ratio == 0.3
    peer: MGDLoss = build("mgd", two_stage=True)
    torch.manual_seed(0)
    keep = peer.keep_mask(torch.zeros(4, 8, 64, 64))
    assert keep.shape == (4, 1, 64, 64)
    assert set(keep.unique().tolist()) == {0.0, 1.0}
    assert (1 - keep.mean().item()) == pytest.approx(0.45, abs=0.02)


# ---------------------------------------------------------------- fgd


def gc_block_reference(block, x):
    """Independent GcBlock on one C x H x W map: softmax-pooled context, 1x1 - LN - ReLU - 1x1."""
    c = x.shape[0]
    pix = x.reshape(c, -1)
    wm, bm = block.conv_mask.weight.reshape(c), block.conv_mask.bias
    att = torch.softmax(wm @ pix + bm, dim=0)
    context = pix @ att
    conv1, norm, _, conv2 = block.transform
    z = conv1.weight.reshape(conv1.out_channels, c) @ context + conv1.bias
    z = (z - z.mean()) / torch.sqrt(
        z.var(unbiased=False) + norm.eps
    ) * norm.weight.flatten() + norm.bias.flatten()
    y = conv2.weight.reshape(c, -1) @ torch.relu(z) + conv2.bias
    return x + y[:, None, None]


def fgd_attention_reference(f, temp):
    """Spatial (H W softmax over pixels of mean_c |F| / T) and channel (C softmax over channels
    of mean_hw |F| / T) attention of one C x H x W map, as flat lists (pixels row-major)."""
    c, h, w = f.shape
    cells = [(i, j) for i in range(h) for j in range(w)]
    sp = softmax([sum(abs(f[k, i, j].item()) for k in range(c)) / c / temp for i, j in cells])
    ch = softmax([sum(abs(f[k, i, j].item()) for i, j in cells) / (h * w) / temp for k in range(c)])
    return [h * w * v for v in sp], [c * v for v in ch]


def fgd_reference(peer, s, t, fg_masks, spec):
    """Element-by-element FGD terms for one image per level; fg_masks per level (H x W lists)."""
    temp, terms = 0.5, {"fg": 0.0, "bg": 0.0, "attention": 0.0, "global": 0.0}
    for lvl, (sl, tl) in enumerate(zip(s, t)):
        sl, tl = sl[0].detach(), tl[0]
        c, h, w = sl.shape
        cells = [(i, j) for i in range(h) for j in range(w)]
        sp_t, ch_t = fgd_attention_reference(tl, temp)
        sp_s, ch_s = fgd_attention_reference(sl, temp)
        fg = fg_masks[lvl]
        n_bg = sum(1 for i, j in cells if fg[i][j] == 0)
        for n, (i, j) in enumerate(cells):
            bg = (1.0 / n_bg) if fg[i][j] == 0 else 0.0
            for k in range(c):
                d2 = (tl[k, i, j].item() - sl[k, i, j].item()) ** 2
                terms["fg"] += fg[i][j] * sp_t[n] * ch_t[k] * d2
                terms["bg"] += bg * sp_t[n] * ch_t[k] * d2
        terms["attention"] += sum(abs(a - b) for a, b in zip(ch_s, ch_t)) + sum(
            abs(a - b) for a, b in zip(sp_s, sp_t)
        )
        with torch.no_grad():
            out_s = gc_block_reference(peer.gc_student[lvl], sl)
            out_t = gc_block_reference(peer.gc_teacher[lvl], tl)
        terms["global"] += ((out_s - out_t) ** 2).sum().item()
    weights = {
        "fg": spec.fgd_alpha,
        "bg": spec.fgd_beta,
        "attention": spec.fgd_gamma,
        "global": spec.fgd_lambda,
    }
    return {f"fgd/{k}": weights[k] * v for k, v in terms.items()}


def test_fgd_hand_computed():
    spec = FGDSpec(fgd_alpha=1.0, fgd_beta=2.0, fgd_gamma=3.0, fgd_lambda=0.5)
    peer = build_peer("fgd", 2, 2, spec, False)
    torch.manual_seed(5)
    for block in [*peer.gc_student, *peer.gc_teacher]:
        for p in block.parameters():
            nn.init.normal_(p, std=0.7)
    s, t = pair(6, batch=1, channels=2, shapes=((2, 2), (2, 3)))
    # box (0, 0, 4, 4) on an 8 x 8 (level 0, stride 4) and 8 x 12 (level 1, stride 4 x 4) batch:
    # level 0 marks cell (0, 0) with 1 / 1; level 1 the same
    strides = [(4.0, 4.0), (4.0, 4.0)]
    out = peer(s, t, [torch.tensor([[0.0, 0.0, 4.0, 4.0]])], strides)
    ref = fgd_reference(peer, s, t, [[[1, 0], [0, 0]], [[1, 0, 0], [0, 0, 0]]], spec)
    for name, value in ref.items():
        assert out[name].item() == pytest.approx(value, rel=1e-5), name


def test_fgd_foreground_mask_uses_one_over_area_and_batch_division():
    # two images; image 0: a 2 x 1-cell box (value 1/2), image 1: no box -> all background
    spec = FGDSpec(fgd_alpha=1.0, fgd_beta=1.0, fgd_gamma=0.0, fgd_lambda=0.0)
    peer = build_peer("fgd", 1, 1, spec, False)
    t = [torch.ones(2, 1, 2, 2)]  # uniform |F|: both attentions are exactly 1
    s = [torch.zeros(2, 1, 2, 2)]  # (T - S)^2 = 1 everywhere
    out = peer(s, t, [torch.tensor([[0.0, 0.0, 4.0, 8.0]]), torch.zeros(0, 4)], [(4.0, 4.0)])
    assert out["fgd/fg"].item() == pytest.approx((0.5 + 0.5) / 2)  # sum(M_fg) = 1, / B
    assert out["fgd/bg"].item() == pytest.approx((1.0 + 1.0) / 2)  # each image's M_bg sums to 1
