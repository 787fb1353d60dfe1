"""multi_value_mask / inverse_area_mask against a naive per-box, per-cell Python reference."""

import math
import statistics

import pytest
import torch

from mar_core.distill import masks
from mar_core.distill.masks import inverse_area_mask, multi_value_mask


def naive_mask(
    boxes,
    feat_size,
    stride,
    kappas=(1.0, 1.5, 2.0),
    values=(1.0, 0.5, 0.25),
    mode="rings",
    sigma=0.5,
    scale_norm=True,
):
    """The rule of docs/mar-method.md section 1 written cell by cell, box by box."""
    height, width = feat_size
    sy, sx = stride
    flat = [b for bx in boxes for b in bx.tolist()]
    areas = [max(0.0, x2 - x1) / sx * max(0.0, y2 - y1) / sy for x1, y1, x2, y2 in flat]
    ref = statistics.median(areas) if areas else 0.0
    out = torch.zeros(len(boxes), height, width, dtype=torch.float64)
    for b, bx in enumerate(boxes):
        for x1, y1, x2, y2 in bx.tolist():
            cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
            home_i = min(max(math.floor(cy / sy), 0), height - 1)
            home_j = min(max(math.floor(cx / sx), 0), width - 1)
            area = max(0.0, x2 - x1) / sx * max(0.0, y2 - y1) / sy
            scale = min(1.0, ref / area) if scale_norm and area > 0 else 1.0
            for i in range(height):
                for j in range(width):
                    px, py = (j + 0.5) * sx, (i + 0.5) * sy
                    if mode == "rings":
                        v = 0.0
                        for kappa, value in zip(kappas, values):
                            in_x = abs(px - cx) <= kappa * hw or j == home_j
                            in_y = abs(py - cy) <= kappa * hh or i == home_i
                            if in_x and in_y:
                                v = value
                                break
                    else:
                        w_eff, h_eff = max(x2 - x1, sx), max(y2 - y1, sy)
                        gx = 1.0 if j == home_j else math.exp(-(((px - cx) / (sigma * w_eff)) ** 2) / 2)
                        gy = 1.0 if i == home_i else math.exp(-(((py - cy) / (sigma * h_eff)) ** 2) / 2)
                        v = gx * gy
                        v = 0.0 if v < 0.01 else v
                    out[b, i, j] = max(out[b, i, j].item(), v * scale)
    return out


def random_boxes(gen, n, img_h, img_w, min_size=2.0):
    """n random xyxy boxes (float64) inside an img_h x img_w image, some smaller than a cell."""
    x1 = torch.rand(n, generator=gen, dtype=torch.float64) * (img_w - min_size)
    y1 = torch.rand(n, generator=gen, dtype=torch.float64) * (img_h - min_size)
    w = min_size + torch.rand(n, generator=gen, dtype=torch.float64) ** 2 * (img_w - x1 - min_size)
    h = min_size + torch.rand(n, generator=gen, dtype=torch.float64) ** 2 * (img_h - y1 - min_size)
    return torch.stack([x1, y1, x1 + w, y1 + h], 1)


def test_ring_values_hand_computed():
    # stride 8, cell centres 4, 12, ..., 60; box centre 32, half-size 12 in both axes:
    # distances 28 20 12 4 4 12 20 28 -> ring0 (<= 12) cells 2..5, ring1 (<= 18) none more,
    # ring2 (<= 24) cells 1 and 6.
    boxes = [torch.tensor([[20.0, 20.0, 44.0, 44.0]])]
    mask = multi_value_mask(boxes, (8, 8), (8.0, 8.0), scale_norm=False)
    prof = torch.tensor([0, 0.25, 1, 1, 1, 1, 0.25, 0])
    assert mask.shape == (1, 8, 8) and mask.dtype == torch.float32
    torch.testing.assert_close(mask[0], torch.minimum(prof[:, None], prof[None, :]))


def test_max_on_overlaps():
    # A: core cells 2..5, ring 2 at cells 1 and 6 per axis; B (centre 12, half-size 8): core
    # cells 0..2, ring 2 at cell 3 (distance 16 = 2 * 8)
    boxes = [torch.tensor([[20.0, 20.0, 44.0, 44.0], [4.0, 4.0, 20.0, 20.0]])]
    mask = multi_value_mask(boxes, (8, 8), (8.0, 8.0), scale_norm=False)
    assert mask[0, 2, 1] == 1.0  # B's core over A's outer ring (0.25)
    assert mask[0, 3, 3] == 1.0  # A's core over B's outer ring
    assert mask[0, 3, 0] == 0.25 and mask[0, 1, 6] == 0.25  # B only, A only
    torch.testing.assert_close(mask, naive_mask(boxes, (8, 8), (8.0, 8.0), scale_norm=False).float())


def test_box_smaller_than_a_cell_marks_its_centre_cell():
    boxes = [torch.tensor([[9.0, 9.0, 10.0, 10.0]])]  # centre (9.5, 9.5): cell (1, 1)
    mask = multi_value_mask(boxes, (4, 4), (8.0, 8.0))
    expected = torch.zeros(1, 4, 4)
    expected[0, 1, 1] = 1.0
    torch.testing.assert_close(mask, expected)


def test_thin_box_marks_the_cells_its_centre_line_crosses():
    # 2 px wide, 40 px tall pole at stride 16: no column centre inside, column 1 holds its centre
    boxes = [torch.tensor([[17.0, 8.0, 19.0, 48.0]])]
    mask = multi_value_mask(boxes, (4, 4), (16.0, 16.0), scale_norm=False)
    assert mask[0, :, 1].tolist() == [1.0, 1.0, 1.0, 0.5]  # row centres 8..56 vs centre 28 +- 20
    assert mask[0, :, [0, 2, 3]].abs().sum() == 0
    torch.testing.assert_close(mask, naive_mask(boxes, (4, 4), (16.0, 16.0), scale_norm=False).float())


@pytest.mark.parametrize("padded,level", [((96, 160), (12, 20)), ((100, 160), (13, 20))])
def test_non_square_padded_batch_matches_naive(padded, level):
    gen = torch.Generator().manual_seed(1)
    stride = (padded[0] / level[0], padded[1] / level[1])
    boxes = [
        random_boxes(gen, 5, *padded),
        random_boxes(gen, 3, 60, 160),
        torch.zeros(0, 4, dtype=torch.float64),
    ]
    for scale_norm in (False, True):
        got = multi_value_mask(boxes, level, stride, scale_norm=scale_norm)
        assert got.shape == (3, *level)
        torch.testing.assert_close(got, naive_mask(boxes, level, stride, scale_norm=scale_norm).float())
        assert got[2].abs().sum() == 0


def test_axes_are_not_swapped():
    # a wide box in the top-left of a 96 x 160 batch: marks rows 0..1, columns 0..9 at stride 8
    boxes = [torch.tensor([[0.0, 0.0, 80.0, 16.0]])]
    mask = multi_value_mask(boxes, (12, 20), (8.0, 8.0), values=(1.0,), kappas=(1.0,))
    assert mask[0].nonzero().tolist() == [[i, j] for i in range(2) for j in range(10)]


def test_custom_rings_and_chunking_match_naive(monkeypatch):
    monkeypatch.setattr(masks, "_CHUNK_ELEMS", 2 * 12 * 20)  # 2 boxes per chunk
    gen = torch.Generator().manual_seed(2)
    boxes = [random_boxes(gen, 7, 96, 160), random_boxes(gen, 4, 96, 160)]
    kw = {"kappas": (1.0, 1.25, 3.0), "values": (0.9, 0.6, 0.1)}
    got = multi_value_mask(boxes, (12, 20), (8.0, 8.0), **kw)
    torch.testing.assert_close(got, naive_mask(boxes, (12, 20), (8.0, 8.0), **kw).float())


def test_scale_norm_scales_large_boxes_down_to_the_median():
    # core areas 1, 4 and 16 cells: median 4, so the large box is scaled by 4 / 16
    boxes = [
        torch.tensor([[0.0, 0.0, 8.0, 8.0], [32.0, 0.0, 48.0, 16.0]]),
        torch.tensor([[0.0, 32.0, 32.0, 64.0]]),
    ]
    on = multi_value_mask(boxes, (8, 8), (8.0, 8.0), scale_norm=True)
    off = multi_value_mask(boxes, (8, 8), (8.0, 8.0), scale_norm=False)
    assert on[0].max() == 1.0 and on[1].max() == 0.25 and off[1].max() == 1.0
    torch.testing.assert_close(on[0], off[0])
    torch.testing.assert_close(on[1], off[1] * 0.25)
    torch.testing.assert_close(on, naive_mask(boxes, (8, 8), (8.0, 8.0)).float())


def test_gaussian_matches_naive():
    gen = torch.Generator().manual_seed(3)
    boxes = [
        random_boxes(gen, 6, 96, 160),
        torch.zeros(0, 4, dtype=torch.float64),
        torch.tensor([[40.0, 40.0, 41.0, 41.0]], dtype=torch.float64),
    ]  # tiny box
    for scale_norm in (False, True):
        for sigma in (0.5, 0.3):
            got = multi_value_mask(
                boxes, (12, 20), (8.0, 8.0), mode="gaussian", sigma=sigma, scale_norm=scale_norm
            )
            ref = naive_mask(boxes, (12, 20), (8.0, 8.0), mode="gaussian", sigma=sigma, scale_norm=scale_norm)
            torch.testing.assert_close(got, ref.float(), atol=1e-6, rtol=1e-5)
    assert got[1].abs().sum() == 0
    assert got[2, 5, 5] == 1.0  # the tiny box marks the cell holding its centre with 1
    assert got[2].max() == 1.0


def test_gaussian_hand_computed_with_cut():
    boxes = [torch.tensor([[16.0, 16.0, 48.0, 48.0]])]  # centre 32, 32 px wide, stride 8
    mask = multi_value_mask(boxes, (8, 8), (8.0, 8.0), mode="gaussian", sigma=0.3, scale_norm=False)
    g = [math.exp(-0.5 * ((c - 32) / 9.6) ** 2) for c in (4, 12, 20, 28, 36, 44, 52, 60)]
    g[4] = 1.0  # the centre (32) lies in cell 4: its row / column factor is 1
    expected = torch.tensor([[a * b if a * b >= 0.01 else 0.0 for b in g] for a in g])
    torch.testing.assert_close(mask[0], expected.float())
    assert mask[0, 0, 0] == 0 and mask[0, 0, 2] == 0  # 0.0142^2 and 0.0142 * 0.458: cut
    assert mask[0, 0, 3] > 0.01 and mask[0, 0, 4] > mask[0, 0, 3]  # 0.0142 * 0.917, 0.0142 * 1


def test_empty_inputs():
    assert multi_value_mask([torch.zeros(0, 4), torch.zeros(0, 4)], (5, 7), (8.0, 8.0)).shape == (2, 5, 7)
    assert multi_value_mask([torch.zeros(0, 4)], (5, 7), (8.0, 8.0)).abs().sum() == 0
    assert multi_value_mask([], (5, 7), (8.0, 8.0)).shape == (0, 5, 7)


def test_bad_arguments():
    with pytest.raises(ValueError, match="same"):
        multi_value_mask([torch.zeros(0, 4)], (2, 2), (1.0, 1.0), kappas=(1.0, 2.0), values=(1.0,))
    with pytest.raises(ValueError, match="rings, gaussian"):
        multi_value_mask([torch.zeros(0, 4)], (2, 2), (1.0, 1.0), mode="disc")


def test_inverse_area_mask():
    boxes = [torch.tensor([[0.0, 0.0, 16.0, 32.0], [40.0, 40.0, 41.0, 41.0]]), torch.zeros(0, 4)]
    mask = inverse_area_mask(boxes, (8, 8), (8.0, 8.0))
    assert mask[0, :4, :2].eq(1 / 8).all()  # 2 x 4 cells
    assert mask[0, 5, 5] == 1.0  # tiny box: its centre cell
    assert mask[0].sum().item() == pytest.approx(2.0)  # each box carries a total weight of 1
    assert mask[1].abs().sum() == 0
    ring0 = naive_mask(boxes, (8, 8), (8.0, 8.0), kappas=(1.0,), values=(1.0,), scale_norm=False)
    assert torch.equal(mask > 0, ring0 > 0)
