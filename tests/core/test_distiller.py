"""One distillation step: the teacher stays frozen and unchanged; the student and adapters learn;
every KD term is reported by name; hooks are checked and removed."""

import pytest
import torch

from mar_core.distill.capture import FeatureCapture
from mar_core.distill.distiller import build_distiller, kd_warmup_iters
from mar_core.methods import METHODS
from mar_core.methods.mar import MARSpec
from mar_core.models.registry import build_detector
from mar_core.spec import ModelSpec

IMAGES = [torch.rand(3, 96, 80), torch.rand(3, 72, 96)]
TARGETS = [
    {"boxes": torch.tensor([[10.0, 10, 50, 60], [40, 30, 70, 90]]), "labels": torch.tensor([1, 2])},
    {"boxes": torch.tensor([[5.0, 5, 20, 20]]), "labels": torch.tensor([3])},
]


def pair(arch, teacher_backbone="resnet34", s_ch=32, t_ch=48):
    torch.manual_seed(0)
    student = build_detector(ModelSpec(arch=arch, fpn_channels=s_ch, min_size=96, max_size=96), 4)
    teacher = build_detector(
        ModelSpec(arch=arch, backbone=teacher_backbone, fpn_channels=t_ch, min_size=96, max_size=96), 4
    )
    return student, teacher


def one_step(distiller):
    opt = torch.optim.SGD([p for p in distiller.parameters() if p.requires_grad], lr=0.01)
    distiller.train()
    losses = distiller(IMAGES, TARGETS)
    opt.zero_grad()
    sum(losses.values()).backward()
    opt.step()
    return losses


@pytest.mark.parametrize("arch", ["retinanet", "fcos", "fasterrcnn"])
def test_step_updates_student_and_adapters_never_teacher(arch):
    student, teacher = pair(arch)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    s_before = {k: v.clone() for k, v in student.state_dict().items()}
    distiller, _ = build_distiller(student, teacher, MARSpec(relation_weight="mask"), arch, arch, 100)
    losses = one_step(distiller)
    assert {"kd/fg", "kd/bg", "kd/relation"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    assert not teacher.training
    assert distiller.adapters[0].weight.grad is not None  # 32 -> 48 channels: a real 1x1 conv
    assert any(not torch.equal(v, s_before[k]) for k, v in student.state_dict().items())
    assert not any(k.startswith("teacher") for k in distiller.state_dict())
    assert all(k.startswith(("student.", "adapters.")) for k in distiller.state_dict())
    two_stage = arch == "fasterrcnn"  # unset MAR form and weights resolve per detector family
    assert (distiller.cfg.feature_norm, distiller.cfg.alpha, distiller.cfg.gamma) == (
        ("none", 0.29, 42.0) if two_stage else ("channel", 0.28, 150.0)
    )


def test_teacher_reads_the_students_transformed_batch():
    student, teacher = pair("retinanet")
    seen = []
    teacher.transform.register_forward_hook(lambda *a: seen.append("teacher transform ran"))
    teacher.backbone.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    distiller, _ = build_distiller(student, teacher, MARSpec(), "retinanet", "retinanet", 100)
    one_step(distiller)
    assert seen == [(2, 3, 96, 96)]  # padded student batch; no second transform, no post-processing


@pytest.mark.parametrize(
    "method, terms",
    [
        ("feature_mse", {"kd/feature_mse/mse"}),
        ("fgd", {"kd/fgd/fg", "kd/fgd/bg", "kd/fgd/attention", "kd/fgd/global"}),
        ("mgd", {"kd/mgd/generation"}),
        ("pkd", {"kd/pkd/pearson"}),
        ("cwd", {"kd/cwd/kl"}),
    ],
)
def test_peers_run_in_the_same_harness(method, terms):
    student, teacher = pair("retinanet")
    distiller, _ = build_distiller(student, teacher, METHODS[method].spec(), "retinanet", "retinanet", 100)
    losses = one_step(distiller)
    assert terms <= set(losses), set(losses)


def test_ablation_switches_drop_terms():
    student, teacher = pair("retinanet")
    cfg = MARSpec(feature_loss=False)
    distiller, _ = build_distiller(student, teacher, cfg, "retinanet", "retinanet", 100)
    assert "kd/fg" not in one_step(distiller) and "kd/relation" in one_step(distiller)


@pytest.mark.parametrize("method", list(METHODS))
def test_the_distiller_runs_the_loss_module_the_registry_names(method):
    student, teacher = pair("retinanet")
    distiller, _ = build_distiller(student, teacher, METHODS[method].spec(), "retinanet", "retinanet", 100)
    module, _, name = METHODS[method].loss.partition(":")
    assert f"{type(distiller.kd_loss).__module__}:{type(distiller.kd_loss).__name__}" == f"{module}:{name}"
    # the FPN methods' terms read the adapted FPN maps; the head ones have their own adapters
    head = method in ("pkd_head", "cwd_head", "logit_kd", "crosskd")
    assert distiller.has_unused_parameters == head


def test_adapters_unused_only_when_the_terms_do_not_read_them():
    student, teacher = pair("retinanet")
    distiller, _ = build_distiller(
        student, teacher, MARSpec(feature_loss=False), "retinanet", "retinanet", 100
    )
    assert distiller.has_unused_parameters  # 32 -> 48 channels: real 1x1 convs, no gradient


def test_levels_are_paired_by_stride_with_a_mobilenet_teacher():
    student, teacher = pair("retinanet", teacher_backbone="mobilenet_v3_large")
    distiller, _ = build_distiller(student, teacher, MARSpec(), "retinanet", "retinanet", 100)
    # student strides 8..128; the MobileNetV3 FPN has 32, 32, 64, 128: strides 8 and 16 are left out
    assert [(p.stride, p.student, p.teacher) for p in distiller.levels] == [
        (32, "2", "0"),
        (64, "p6", "p6"),
        (128, "p7", "p7"),
    ]
    assert distiller.left_out == ["student 0 (stride 8)", "student 1 (stride 16)", "teacher 1 (stride 32)"]
    assert "stride 32: student 2 <- teacher 0" in distiller.levels_message
    assert torch.isfinite(one_step(distiller)["kd/fg"])


def test_kd_warmup_scales_terms():
    student, teacher = pair("retinanet")
    distiller, hooks = build_distiller(
        student, teacher, MARSpec(kd_warmup_iters=10), "retinanet", "retinanet", 100
    )

    class T:
        iter = 0

    hooks[0].before_step(T)
    assert distiller.kd_scale == pytest.approx(0.1)
    T.iter = 50
    hooks[0].before_step(T)
    assert distiller.kd_scale == 1.0
    assert kd_warmup_iters(MARSpec(), 1000) == 100 and kd_warmup_iters(MARSpec(), 20000) == 500


def test_capture_rejects_unknown_path_with_near_matches():
    student, _ = pair("retinanet")
    with pytest.raises(ValueError, match="near matches: head.classification_head.conv"):
        FeatureCapture(student, ["head.classification_head.convs"])


def test_capture_hooks_are_removed_on_close():
    student, _ = pair("retinanet")
    cap = FeatureCapture(student, ["backbone"])
    cap.close()
    student.eval()
    with torch.no_grad():
        student([torch.rand(3, 64, 64)])
    assert cap.outputs["backbone"] == []
