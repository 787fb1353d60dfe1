"""relation_loss (Gram form) against the naive N x N form and an independent per-image loop."""

import pytest
import torch

from benchmarks.relation_perf import measure_in_subprocess
from mar_core.distill.relation import relation_loss, relation_loss_naive

SHAPES = [(5, 7), (4, 4), (1, 3)]  # three levels, one of them a single row


def feats(gen, batch, channels, dtype=torch.float64, grad=False):
    return [
        torch.randn(batch, channels, h, w, generator=gen, dtype=dtype).requires_grad_(grad) for h, w in SHAPES
    ]


def independent_reference(student, teacher, weights=None):
    """Per image and level: cosine matrices from explicit norms, pair (i, j) weighted w_i w_j."""
    total = []
    for lvl, (s, t) in enumerate(zip(student, teacher)):
        for b in range(s.shape[0]):
            xs, xt = s[b].flatten(1).double(), t[b].flatten(1).double()
            xs = xs / xs.norm(dim=0).clamp(min=1e-6)
            xt = xt / xt.norm(dim=0).clamp(min=1e-6)
            diff2 = (xs.T @ xs - xt.T @ xt) ** 2
            if weights is not None:
                w = weights[lvl][b].flatten().double()
                diff2 = diff2 * w[:, None] * w[None, :]
            total.append(diff2.sum() / xs.shape[1] ** 2)
    return torch.stack(total).mean()  # every level has the same batch: images x levels mean


@pytest.mark.parametrize("weighted", [False, True])
def test_gram_form_equals_naive_float64(weighted):
    gen = torch.Generator().manual_seed(0)
    student, teacher = feats(gen, 3, 6), feats(gen, 3, 11)  # C_s != C_t
    weights = (
        [torch.rand(3, h, w, generator=gen, dtype=torch.float64) + 0.1 for h, w in SHAPES]
        if weighted
        else None
    )
    got = relation_loss(student, teacher, weights)
    naive = relation_loss_naive(student, teacher, weights)
    ref = independent_reference(student, teacher, weights)
    assert got.dtype == torch.float64
    assert abs(got.item() - naive.item()) / naive.item() < 1e-5
    assert abs(naive.item() - ref.item()) / ref.item() < 1e-10
    assert got.item() > 0.01  # not a trivially small value


def test_gradient_equals_naive_and_reaches_the_student_only():
    gen = torch.Generator().manual_seed(1)
    student, teacher = feats(gen, 2, 5, grad=True), feats(gen, 2, 9, grad=True)
    relation_loss(student, teacher).backward()
    grads = [s.grad.clone() for s in student]
    assert all(t.grad is None for t in teacher)
    for s in student:
        s.grad = None
    relation_loss_naive(student, [t.detach() for t in teacher]).backward()
    for g, s in zip(grads, student):
        assert g.abs().sum() > 0
        torch.testing.assert_close(g, s.grad, rtol=1e-8, atol=1e-12)


def test_zero_when_student_equals_teacher_up_to_pixel_scale():
    gen = torch.Generator().manual_seed(2)
    teacher = feats(gen, 2, 8, dtype=torch.float32)
    assert relation_loss(teacher, teacher).item() == 0.0
    scaled = [t * (torch.rand(t.shape[0], 1, *t.shape[2:], generator=gen) + 0.5) for t in teacher]
    assert relation_loss(scaled, teacher).item() < 1e-6  # cosines ignore each pixel's norm
    assert relation_loss(feats(gen, 2, 8, dtype=torch.float32), teacher).item() > 1e-2


def test_float32_and_autocast_accuracy():
    gen = torch.Generator().manual_seed(3)
    s = torch.randn(2, 64, 24, 24, generator=gen)
    t = s + 0.7 * torch.randn(2, 64, 24, 24, generator=gen) + 0.5  # correlated, non-zero mean
    ref = relation_loss_naive([s.double()], [t.double()]).item()
    assert abs(relation_loss([s], [t]).item() - ref) / ref < 1e-4
    s16, t16 = s.bfloat16(), t.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = relation_loss([s16], [t16])
    assert got.dtype == torch.float32
    ref16 = relation_loss_naive([s16.double()], [t16.double()]).item()
    assert abs(got.item() - ref16) / ref16 < 1e-4


def test_shape_errors():
    with pytest.raises(ValueError, match="levels"):
        relation_loss([torch.zeros(1, 2, 3, 3)], [])
    with pytest.raises(ValueError, match="equal B, H, W"):
        relation_loss([torch.zeros(1, 2, 3, 3)], [torch.zeros(1, 2, 3, 4)])
    with pytest.raises(ValueError, match="B x H x W"):
        relation_loss([torch.zeros(1, 2, 3, 3)], [torch.zeros(1, 4, 3, 3)], [torch.zeros(1, 3)])


def test_memory_never_materialises_n_by_n():
    # 1 x 256 x 128 x 128: N = 16384, one N x N float32 matrix is 1 GiB. Forward + backward of the
    # Gram form must stay far below; the naive form at N = 4096 (64 MiB per matrix, several of
    # them) shows that the meter does see such matrices.
    gram = measure_in_subprocess(side=128, channels=256, form="gram", backward=True, threads=1, repeats=1)
    naive = measure_in_subprocess(side=64, channels=256, form="naive", backward=False, threads=1, repeats=1)
    assert gram["peak_rss_mb"] < 300, gram
    assert naive["peak_rss_mb"] > 150, naive
    assert gram["value"] > 0
