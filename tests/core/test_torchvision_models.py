"""torchvision's FPN detectors named by builder: the spec, the build, loading their state_dicts
(class count from the classifier, both BatchNorm layouts), naming the builder a misfit file
looks like, Mask / Keypoint R-CNN on box-only data, trunk freezing, and the model card's
snippet that rebuilds this project's own students with torchvision alone."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torchvision.models import mobilenet_v3_large, resnet50
from torchvision.models.detection import backbone_utils

from mar_core import names
from mar_core.errors import CheckpointError, SpecError
from mar_core.models.checkpoint_io import write_model_output
from mar_core.models.loading import load_detector
from mar_core.models.registry import build_detector
from mar_core.models.torchvision_builders import BUILDERS
from mar_core.spec import JobSpec, ModelSpec, parse_spec
from tests.core.torchvision_files import NUM_CLASSES

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = {"kind": "train", "dataset": {"path": "data/synth"}}
TINY = {"min_size": 64, "max_size": 64}
FAMILY_OF_CLASS = {
    "RetinaNet": "retinanet",
    "FCOS": "fcos",
    "FasterRCNN": "fasterrcnn",
    "MaskRCNN": "fasterrcnn",
    "KeypointRCNN": "fasterrcnn",
}


# ---------------------------------------------------------------- the spec (torch-free)


def test_a_builder_spec_takes_the_builders_sizes_and_dumps_only_its_fields():
    spec = parse_spec({**BASE, "model": {"torchvision": "fasterrcnn_mobilenet_v3_large_320_fpn"}})
    assert (spec.model.min_size, spec.model.max_size) == (320, 640)
    assert (spec.model.family, spec.model.two_stage, spec.model.arch) == ("fasterrcnn", True, "fasterrcnn")
    assert spec.model.backbone is None and spec.model.fpn_channels is None
    dumped = spec.to_json_dict()["model"]
    assert dumped == {
        "torchvision": "fasterrcnn_mobilenet_v3_large_320_fpn",
        "min_size": 320,
        "max_size": 640,
    }
    assert JobSpec.model_validate(json.loads(json.dumps(spec.to_json_dict()))) == spec
    keypoint = ModelSpec(torchvision="keypointrcnn_resnet50_fpn", num_keypoints=5)
    assert keypoint.min_size == [640, 672, 704, 736, 768, 800] and keypoint.num_keypoints == 5


def test_an_own_arch_spec_dumps_as_before():
    assert set(ModelSpec().model_dump()) == {
        "arch",
        "backbone",
        "fpn_channels",
        "norm",
        "min_size",
        "max_size",
        "anchor_scale",
    }
    assert ModelSpec(arch="fcos").family == "fcos" and not ModelSpec(arch="fcos").two_stage


@pytest.mark.parametrize(
    "model, param, message",
    [
        (
            {"torchvision": "fcos_resnet50_fpn", "fpn_channels": 64},
            "model.fpn_channels",
            "not with torchvision",
        ),
        ({"torchvision": "fcos_resnet50_fpn", "arch": "fcos"}, "model.arch", "fixes the architecture"),
        ({"torchvision": "ssd300_vgg16"}, "model.torchvision", "without an FPN"),
        ({"torchvision": "ssdlite320_mobilenet_v3_large"}, "model.torchvision", "read FPN levels"),
        ({"torchvision": "yolo"}, "model.torchvision", "retinanet_resnet50_fpn, retinanet_resnet50_fpn_v2"),
        ({"arch": "fcos", "num_keypoints": 3}, "model.num_keypoints", "only with torchvision"),
        ({"torchvision": "fcos_resnet50_fpn", "num_keypoints": 3}, "model.num_keypoints", "keypointrcnn"),
        (
            {"torchvision": "fasterrcnn_mobilenet_v3_large_fpn", "trainable_backbone_layers": 7},
            "model.trainable_backbone_layers",
            "6 trunk stages",
        ),
    ],
)
def test_bad_builder_specs_name_the_field(model, param, message):
    with pytest.raises(SpecError, match=message) as err:
        parse_spec({**BASE, "model": model})
    assert err.value.param == param


def test_teacher_class_names_may_not_repeat_a_class():
    spec = {
        **BASE,
        "kind": "distill",
        "teacher": {"checkpoint": "t", "class_names": ["a", "N/A", "N/A", "a"]},
    }
    with pytest.raises(SpecError, match="names a class twice: a") as err:
        parse_spec(spec)
    assert err.value.param == "teacher.class_names"


# ---------------------------------------------------------------- the builds


@pytest.mark.parametrize("builder", names.TORCHVISION_BUILDERS)
def test_the_names_list_matches_each_builder(builder):
    info = names.TORCHVISION_BUILDERS[builder]
    with torch.device("meta"):
        model = BUILDERS[builder](weights=None, weights_backbone=None, num_classes=3)
    assert FAMILY_OF_CLASS[type(model).__name__] == info.family
    assert (tuple(model.transform.min_size), model.transform.max_size) == (info.min_size, info.max_size)


def test_strides_one_and_two_stage_and_mobilenet():
    with torch.device("meta"):  # shapes only
        strides = {b: build_detector(ModelSpec(torchvision=b, **TINY), 3).mar_strides for b in BUILDERS}
    assert list(strides["retinanet_resnet50_fpn_v2"].values()) == [8, 16, 32, 64, 128]
    assert list(strides["fcos_resnet50_fpn"].values()) == [8, 16, 32, 64, 128]
    assert list(strides["maskrcnn_resnet50_fpn"].values()) == [4, 8, 16, 32, 64]
    assert list(strides["fasterrcnn_mobilenet_v3_large_fpn"].values()) == [32, 32, 64]


def test_mask_and_keypoint_rcnn_train_on_boxes_and_predict_their_heads():
    images = [torch.rand(3, 64, 64)]
    targets = [{"boxes": torch.tensor([[8.0, 8, 40, 40]]), "labels": torch.tensor([1])}]
    for builder, head, output in (
        ("maskrcnn_resnet50_fpn", "mask_predictor", "masks"),
        ("keypointrcnn_resnet50_fpn", "keypoint_predictor", "keypoints"),
    ):
        model = build_detector(ModelSpec(torchvision=builder, **TINY), 3)
        losses = model.train()(images, targets)
        assert {"loss_classifier", "loss_box_reg", "loss_objectness"} <= set(losses)
        assert not any(k in losses for k in ("loss_mask", "loss_keypoint"))
        assert not any(p.requires_grad for p in getattr(model.roi_heads, head).parameters())
        assert model.roi_heads.mask_roi_pool is not None or model.roi_heads.keypoint_roi_pool is not None
        model.roi_heads.score_thresh, model.roi_heads.detections_per_img = 0.0, 3  # a few outputs, fast
        model.rpn._pre_nms_top_n["testing"] = model.rpn._post_nms_top_n["testing"] = 20
        with torch.no_grad():
            out = model.eval()(images)[0]
        assert output in out


def _trainable(module: torch.nn.Module) -> set[str]:
    return {n for n, p in module.named_parameters() if p.requires_grad}


def test_trainable_backbone_layers_freezes_as_torchvision_does():
    ours = build_detector(ModelSpec(torchvision="fasterrcnn_resnet50_fpn", trainable_backbone_layers=2), 3)
    stock = backbone_utils._resnet_fpn_extractor(resnet50(), 2)
    assert _trainable(ours.backbone.body) == _trainable(stock.body)
    ours = build_detector(
        ModelSpec(torchvision="fasterrcnn_mobilenet_v3_large_fpn", trainable_backbone_layers=3), 3
    )
    stock = backbone_utils._mobilenet_extractor(mobilenet_v3_large(), True, 3)
    assert _trainable(ours.backbone.body) == _trainable(stock.body)
    assert _trainable(ours.backbone.fpn) == _trainable(stock.fpn)


# ---------------------------------------------------------------- loading state_dict files


def test_a_file_named_as_another_builder_says_what_it_looks_like(builder_files):
    v2 = builder_files.path("retinanet_resnet50_fpn_v2")
    loaded = load_detector(v2, ModelSpec(torchvision="retinanet_resnet50_fpn_v2", **TINY))
    assert loaded.num_classes == NUM_CLASSES  # read from head.classification_head.cls_logits
    with pytest.raises(CheckpointError, match="this looks like retinanet_resnet50_fpn_v2") as err:
        load_detector(v2, ModelSpec(torchvision="retinanet_resnet50_fpn", **TINY))
    assert "backbone.fpn.extra_blocks.p6.weight" in str(err.value)  # the first mismatches are listed
    # this project's own R50 (GroupNorm by default) named for a torchvision file: the hint says how
    with pytest.raises(CheckpointError, match='"torchvision": "retinanet_resnet50_fpn_v2"'):
        load_detector(v2, ModelSpec(arch="retinanet", backbone="resnet50", **TINY))
    with pytest.raises(CheckpointError, match="bare state_dict.*looks like retinanet_resnet50_fpn_v2"):
        load_detector(v2)


def test_a_groupnorm_spec_with_a_batchnorm_checkpoint_hints_at_torchvision(tmp_path):
    model = build_detector(
        ModelSpec(arch="fcos", backbone="resnet18", fpn_channels=32, norm="batch", **TINY), 4
    )
    torch.save(model.state_dict(), tmp_path / "bn.pt")
    with pytest.raises(CheckpointError, match='model.norm is group.*"torchvision": "<builder>"'):
        load_detector(
            tmp_path / "bn.pt", ModelSpec(arch="fcos", backbone="resnet18", fpn_channels=32, **TINY)
        )


# ---------------------------------------------------------------- the model card's snippet

PROBE = textwrap.dedent(
    """
    def probe(model):
        import torch
        generator = getattr(model, "anchor_generator", None) or model.rpn.anchor_generator
        facts = {
            "class": type(model).__name__,
            "anchors": [list(map(float, s)) for s in generator.sizes],
            "ratios": [list(map(float, r)) for r in generator.aspect_ratios],
            "sizes": [list(model.transform.min_size), model.transform.max_size],
            "modules": [n + ":" + type(m).__name__ for n, m in model.named_modules()],
        }
        if hasattr(model, "rpn"):
            facts["rpn"] = [model.rpn._pre_nms_top_n, model.rpn._post_nms_top_n,
                            model.roi_heads.fg_bg_sampler.batch_size_per_image]
        return facts
    """
)

CHILD = textwrap.dedent(
    """
    import json, sys
    import torch
    out = {}
    for run in sys.argv[1:]:
        card = json.load(open(run + "/model.json"))
        scope = {}
        exec(card["snippet"], scope)
        model = scope["model"]
        model.load_state_dict(torch.load(run + "/model.pt", weights_only=True), strict=True)
        out[run] = probe(model)
    assert "mar_core" not in sys.modules and "tests" not in sys.modules
    print(json.dumps(out))
    """
)


def test_the_snippet_rebuilds_own_students_with_torchvision_only(tmp_path):
    specs = [
        ModelSpec(arch="retinanet", backbone="resnet18", fpn_channels=64, anchor_scale=0.5, **TINY),
        ModelSpec(
            arch="fcos", backbone="resnet34", fpn_channels=48, norm="batch", min_size=[64, 96], max_size=96
        ),
        ModelSpec(arch="fasterrcnn", backbone="mobilenet_v3_large", fpn_channels=32, norm="frozen_batch"),
        ModelSpec(torchvision="fasterrcnn_mobilenet_v3_large_320_fpn"),
    ]
    scope: dict = {}
    exec(PROBE, scope)
    runs, expected = [], {}
    for i, spec in enumerate(specs):
        model = build_detector(spec, 4)
        run = tmp_path / f"run{i}"
        write_model_output(run, model, spec, ["a", "b", "c"])
        runs.append(str(run))
        expected[str(run)] = scope["probe"](model)
    child = subprocess.run(
        [sys.executable, "-c", PROBE + CHILD, *runs],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == json.loads(json.dumps(expected))
    card = json.loads((tmp_path / "run3" / "model.json").read_text())
    assert card["torchvision"] == {
        "builder": "fasterrcnn_mobilenet_v3_large_320_fpn",
        "kwargs": {"num_classes": 4, "min_size": 320, "max_size": 640},
    }
