"""``mar bench diagnose``'s pieces: the exact split of the feature loss, the least-squares
adapter, and the report section from the committed result."""

import torch
from torch import nn

from benchmarks.diagnose import diagnose_section, lstsq_adapter
from benchmarks.fg_parts import PARTS, loss_parts
from benchmarks.store import DEFAULT_RESULTS
from mar_core.distill import mask_guided_feature_loss, multi_value_mask


def test_the_parts_add_up_to_the_level_terms_and_split_as_their_names_say():
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    t = 3 * torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64) + 5
    boxes = [torch.tensor([[0.0, 0.0, 12.0, 10.0]]), torch.tensor([[4.0, 4.0, 8.0, 8.0]])]
    (m,) = [multi_value_mask(boxes, (4, 4), (4.0, 4.0)).double()]
    ref = mask_guided_feature_loss([s], [t], [m])
    for weight, name in ((m, "fg"), ((m == 0).double(), "bg")):
        parts = loss_parts(s, t, weight)
        assert set(parts) == set(PARTS)
        torch.testing.assert_close(sum(parts.values()), float(ref[name]), rtol=1e-6, atol=0)  # ref is float32
    shifted = loss_parts(t - 2.0, t, m)  # a constant offset only
    assert abs(shifted["offset"] - 4.0) < 1e-12 and abs(shifted["scale"]) < 1e-12
    assert abs(shifted["correlation"]) < 1e-12
    scaled = loss_parts(0.5 * (t - t.mean()) + t.mean(), t, torch.ones(2, 4, 4, dtype=torch.float64))
    assert abs(scaled["correlation"]) < 1e-12 and scaled["scale"] > 0  # same pattern, other scale


def test_lstsq_adapter_recovers_an_affine_map():
    gen = torch.Generator().manual_seed(1)
    w, b = torch.randn(5, 3, generator=gen), torch.randn(5, generator=gen)
    s = [torch.randn(2, 3, 4, 4, generator=gen), torch.randn(2, 3, 2, 2, generator=gen)]
    t = [torch.einsum("oc,bchw->bohw", w, f) + b[:, None, None] for f in s]
    conv = nn.Conv2d(3, 5, 1)
    lstsq_adapter(conv, s, t)
    torch.testing.assert_close(conv.weight[..., 0, 0], w, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conv.bias, b, rtol=1e-5, atol=1e-5)


def test_the_section_is_generated_from_the_committed_result():
    lines = diagnose_section(DEFAULT_RESULTS, ["cpu"])
    assert lines[0].startswith("## Diagnosis")
    text = "\n".join(lines)
    assert "| P7 (1x1) |" in text and "| mar | fg |" in text and "| lstsq |" in text
