"""Peers at the detection heads: pkd_head / cwd_head (classification tower), logit_kd (one-stage
heads; Faster R-CNN's box classifier), crosskd.

One distillation step of tiny detectors (64 px): the terms are named, finite and positive, the
teacher gets no gradient and stays unchanged, the student and the method's own adapters learn;
a student identical to its teacher gives terms of 0 (up to the eps of the standardisations).
"""

import copy

import pytest
import torch
from torch import nn

from mar_core.distill.distiller import build_distiller
from mar_core.distill.peers.crosskd import align
from mar_core.distill.peers.head_ops import bernoulli_kl, split_tower
from mar_core.distill.peers.logit_kd import softmax_kl
from mar_core.methods import METHODS
from mar_core.models.registry import build_detector
from mar_core.spec import ModelSpec

IMAGES = [torch.rand(3, 64, 64), torch.rand(3, 64, 48)]
TARGETS = [
    {"boxes": torch.tensor([[10.0, 10, 40, 50], [30, 20, 60, 60]]), "labels": torch.tensor([1, 2])},
    {"boxes": torch.tensor([[5.0, 5, 20, 20]]), "labels": torch.tensor([3])},
]
HEAD_PEERS = ["pkd_head", "cwd_head", "logit_kd", "crosskd"]
CASES = [
    ("pkd_head", "retinanet"),
    ("pkd_head", "fasterrcnn"),  # the tower is the RPN head's conv
    ("cwd_head", "fcos"),
    ("logit_kd", "retinanet"),
    ("logit_kd", "fcos"),
    ("logit_kd", "fasterrcnn"),  # softmax KL on the student's proposals
    ("crosskd", "retinanet"),
    ("crosskd", "fcos"),
]


def detector(arch, backbone="resnet18", channels=32):
    return build_detector(
        ModelSpec(arch=arch, backbone=backbone, fpn_channels=channels, min_size=64, max_size=64), 4
    )


def kd_terms(losses):
    return {k: v for k, v in losses.items() if k.startswith("kd/")}


@pytest.mark.parametrize(("method", "arch"), CASES)
def test_one_step_trains_the_student_never_the_teacher(method, arch, one_thread):
    torch.manual_seed(0)
    student, teacher = detector(arch), detector(arch, "resnet34", 48)  # 32 -> 48: real 1x1 adapters
    t_before = copy.deepcopy(teacher.state_dict())
    s_before = copy.deepcopy(student.state_dict())
    distiller, _ = build_distiller(student, teacher, METHODS[method].spec(), arch, arch, 100)
    opt = torch.optim.SGD([p for p in distiller.parameters() if p.requires_grad], lr=0.01)
    distiller.train()
    losses = distiller(IMAGES, TARGETS)
    terms = kd_terms(losses)
    assert {k[3:] for k in terms} == set(distiller.cfg.TERM_WEIGHTS)
    assert all(torch.isfinite(v) and v > 0 for v in terms.values()), terms
    opt.zero_grad()
    sum(terms.values()).backward(
        retain_graph=True
    )  # the KD terms alone: their gradient must reach the student
    student_grads = [p.grad for p in student.parameters() if p.grad is not None]
    assert student_grads and any(g.abs().sum() > 0 for g in student_grads)
    own = [p for n, p in distiller.kd_loss.named_parameters() if "adapter" in n]
    assert bool(own) == (method != "logit_kd")  # logit KD compares class scores: no adapter
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in own)
    assert all(p.grad is None for p in teacher.parameters())
    assert distiller.has_unused_parameters  # the FPN adapters: not read by these terms
    opt.zero_grad()
    sum(losses.values()).backward()
    opt.step()
    assert all(torch.equal(v, t_before[k]) for k, v in teacher.state_dict().items())
    assert any(not torch.equal(v, s_before[k]) for k, v in student.state_dict().items())
    distiller.close()


@pytest.mark.parametrize(
    ("method", "arch"),
    [(m, "retinanet") for m in HEAD_PEERS] + [("crosskd", "fcos"), ("logit_kd", "fasterrcnn")],
)
def test_zero_when_the_student_is_its_teacher(method, arch, one_thread):
    torch.manual_seed(1)
    teacher = detector(arch)
    for m in teacher.modules():  # heads start near zero; make the class scores and boxes vary
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.2)
    distiller, _ = build_distiller(copy.deepcopy(teacher), teacher, METHODS[method].spec(), arch, arch, 100)
    distiller.train()
    for value in kd_terms(distiller(IMAGES, TARGETS)).values():
        # float32 terms of O(1) per element: the standardisations' eps (1e-6) leaves ~1e-5
        assert value.item() == pytest.approx(0.0, abs=1e-4)
    distiller.close()


def test_crosskd_refuses_two_stage_students():
    student, teacher = detector("fasterrcnn"), detector("fasterrcnn")
    with pytest.raises(ValueError, match="one-stage"):
        build_distiller(student, teacher, METHODS["crosskd"].spec(), "fasterrcnn", "fasterrcnn", 100)


def test_logit_kd_two_stage_needs_a_two_stage_teacher_with_the_same_classes():
    with pytest.raises(ValueError, match="reads the detection box classifiers: it needs a two-stage teacher"):
        build_distiller(
            detector("fasterrcnn"),
            detector("retinanet"),
            METHODS["logit_kd"].spec(),
            "fasterrcnn",
            "retinanet",
            9,
        )
    other = build_detector(
        ModelSpec(arch="fasterrcnn", backbone="resnet18", fpn_channels=32, min_size=64, max_size=64), 5
    )
    with pytest.raises(ValueError, match="the student's box classifier has 5 outputs, the teacher's 4"):
        build_distiller(
            other, detector("fasterrcnn"), METHODS["logit_kd"].spec(), "fasterrcnn", "fasterrcnn", 9
        )


def test_softmax_kl_hand_computed():
    s = torch.tensor([[0.5, -1.0, 2.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    t = torch.tensor([[2.0, 0.0, -1.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    p, q = torch.softmax(t / 2, 1), torch.softmax(s / 2, 1)
    expected = (p * torch.log(p / q)).sum(1)
    # float32 softmaxes of O(1) logits: ~1e-7 relative
    torch.testing.assert_close(softmax_kl(s, t, 2.0).double(), expected, rtol=1e-5, atol=1e-7)
    assert softmax_kl(s, t)[1] == pytest.approx(0.0, abs=1e-7)


def test_bernoulli_kl_hand_computed():
    s, t = torch.tensor([0.5, -1.0], dtype=torch.float64), torch.tensor([2.0, -1.0], dtype=torch.float64)
    p, q = torch.sigmoid(t), torch.sigmoid(s)
    expected = p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))
    torch.testing.assert_close(bernoulli_kl(s, t).double(), expected.float().double(), rtol=1e-6, atol=1e-7)
    assert bernoulli_kl(s, t)[1] == pytest.approx(0.0, abs=1e-7)


def test_split_tower_cuts_before_the_activation_of_a_block():
    torch.manual_seed(0)
    tower = detector("retinanet").head.classification_head.conv  # nested conv, GroupNorm, ReLU blocks
    x = torch.randn(2, 32, 4, 4)
    first, rest = split_tower(tower, 3)
    assert isinstance(first[-1], nn.GroupNorm) and isinstance(rest[0], nn.ReLU)
    assert first(x).min() < 0  # pre-activation
    torch.testing.assert_close(rest(first(x)), tower(x))
    empty, whole = split_tower(tower, 0)
    assert len(empty) == 0 and torch.allclose(whole(x), tower(x))


def test_align_gives_the_teachers_channel_statistics():
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    t = 5 + 3 * torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    out = align(s, t)
    dims = (0, 2, 3)
    torch.testing.assert_close(out.mean(dims), t.mean(dims))
    torch.testing.assert_close(out.var(dims, correction=0), t.var(dims, correction=0), rtol=1e-5, atol=0)


def test_a_teacher_with_other_class_order_is_refused():
    from mar_core.models.class_map import ClassMapping

    swapped = ClassMapping(("a", "b", "c"), (2, 1, 3), (), ())
    with pytest.raises(ValueError, match="channel by channel"):
        build_distiller(
            detector("retinanet"),
            detector("retinanet"),
            METHODS["logit_kd"].spec(),
            "retinanet",
            "retinanet",
            100,
            swapped,
        )
