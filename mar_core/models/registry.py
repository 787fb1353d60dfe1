"""Detector registry: RetinaNet, FCOS and Faster R-CNN on ResNet / MobileNetV3 FPN backbones.

``build_detector(spec, num_classes)`` returns a plain torchvision detector (``RetinaNet``,
``FCOS``, ``FasterRCNN``; ``MaskRCNN`` / ``KeypointRCNN`` from their builders) built without
pretrained weights; the same call with the same arguments rebuilds it for loading an exported
state_dict. A spec naming a torchvision builder gets the stock model of that builder
(``torchvision_builders.py``); otherwise this project's own detector (``DETECTORS``), whose FPN
width, norm layer and anchor scale the spec sets.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.models.detection.fcos import FCOSClassificationHead, FCOSHead, FCOSRegressionHead
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import MultiScaleRoIAlign

from mar_core import names
from mar_core.models.backbones import build_backbone, feature_strides
from mar_core.models.norms import NORM_LAYERS, group_norm, head_group_norm
from mar_core.models.torchvision_builders import BUILDERS, build_torchvision
from mar_core.spec import ModelSpec

# Where the distillers read features: FPN outputs, and the classification tower (called once
# per level) for the relation loss, by detector family (``ModelSpec.family``): the same paths in
# this project's detectors and in torchvision's builders (RPN head ``conv`` for the R-CNNs).
FEATURE_MODULE = "backbone"
CLS_TOWER_MODULES = {
    "retinanet": "head.classification_head.conv",
    "fcos": "head.classification_head.conv",
    "fasterrcnn": "rpn.head.conv",
}
# A two-stage detector's box classifier (torchvision's RoIHeads): the pooler, whose inputs are the
# FPN maps, the sampled proposals and the image sizes, and the predictor of class logits and boxes.
BOX_POOL_MODULE = "roi_heads.box_roi_pool"
BOX_PREDICTOR_MODULE = "roi_heads.box_predictor"


def _sizes(spec: ModelSpec) -> dict:
    return {
        "min_size": spec.min_size if isinstance(spec.min_size, int) else tuple(spec.min_size),
        "max_size": spec.max_size,
    }


def _retinanet(spec: ModelSpec, num_classes: int, backbone: nn.Module, level_strides: dict) -> nn.Module:
    strides = list(level_strides.values())
    # torchvision's default: 32 px anchors at stride 8 (4 x stride), 3 octave scales, 3 ratios.
    sizes = tuple(tuple(4 * s * spec.anchor_scale * 2 ** (o / 3) for o in range(3)) for s in strides)
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(strides))
    head = RetinaNetHead(
        backbone.out_channels, anchors.num_anchors_per_location()[0], num_classes, norm_layer=head_group_norm
    )
    return RetinaNet(backbone, num_classes, anchor_generator=anchors, head=head, **_sizes(spec))


def _fcos(spec: ModelSpec, num_classes: int, backbone: nn.Module, level_strides: dict) -> nn.Module:
    strides = list(level_strides.values())
    # FCOS anchors are only points: one "anchor" of the level's stride per location.
    anchors = AnchorGenerator(tuple((float(s),) for s in strides), ((1.0,),) * len(strides))
    c = backbone.out_channels
    head = FCOSHead(c, 1, num_classes, num_convs=0)  # then towers whose GroupNorm fits `c`
    head.classification_head = FCOSClassificationHead(c, 1, num_classes, norm_layer=head_group_norm)
    head.regression_head = FCOSRegressionHead(c, 1, norm_layer=head_group_norm)
    return FCOS(backbone, num_classes, anchor_generator=anchors, head=head, **_sizes(spec))


def _fasterrcnn(spec: ModelSpec, num_classes: int, backbone: nn.Module, level_strides: dict) -> nn.Module:
    strides = list(level_strides.values())
    # torchvision's default: 32 px anchors at stride 4 (8 x stride), 3 ratios.
    sizes = tuple((8 * s * spec.anchor_scale,) for s in strides)
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(strides))
    levels = [k for k in level_strides if k != "pool"]
    roi_pool = MultiScaleRoIAlign(levels, output_size=7, sampling_ratio=2)
    return FasterRCNN(
        backbone,
        num_classes,
        rpn_anchor_generator=anchors,
        rpn_head=RPNHead(backbone.out_channels, anchors.num_anchors_per_location()[0]),
        box_roi_pool=roi_pool,
        box_head=TwoMLPHead(backbone.out_channels * 7 * 7, 1024),
        # Fewer proposals than torchvision's 2000/1000: images here are small and CPUs slow.
        rpn_pre_nms_top_n_train=1000,
        rpn_post_nms_top_n_train=500,
        rpn_pre_nms_top_n_test=500,
        rpn_post_nms_top_n_test=300,
        box_batch_size_per_image=128,
        **_sizes(spec),
    )


DETECTORS: dict[str, Callable[[ModelSpec, int, nn.Module, dict[str, int]], nn.Module]] = {
    "retinanet": _retinanet,
    "fcos": _fcos,
    "fasterrcnn": _fasterrcnn,
}
assert tuple(DETECTORS) == names.DETECTOR_ARCHS, "registry and mar_core.names disagree"


def build_detector(spec: ModelSpec, num_classes: int) -> nn.Module:
    """Build a torchvision detector for ``num_classes`` classes (background included).

    The returned model carries ``mar_strides`` (FPN level name -> stride, measured with one
    forward of the FPN) for the distillers.
    """
    if num_classes < 2:
        raise ValueError("num_classes counts the background: it must be >= 2")
    if spec.torchvision is not None:
        model = build_torchvision(spec, num_classes)
        model.mar_strides = dict(_builder_strides(spec.torchvision))
        return model
    if spec.arch not in DETECTORS:
        raise ValueError(f"unknown architecture {spec.arch!r}; valid: {', '.join(DETECTORS)}")
    norm = NORM_LAYERS[spec.norm] if spec.norm in NORM_LAYERS else group_norm
    backbone = build_backbone(spec.backbone, norm, spec.fpn_channels, two_stage=spec.two_stage)
    with torch.device("meta"):  # measured on a twin without memory or compute: shapes only
        strides = feature_strides(build_backbone(spec.backbone, norm, spec.fpn_channels, spec.two_stage))
    model = DETECTORS[spec.arch](spec, num_classes, backbone, strides)
    model.mar_strides = dict(strides)
    return model


@functools.cache
def _builder_strides(builder: str) -> OrderedDict[str, int]:
    """FPN level -> stride of a torchvision builder's detector, measured on the meta device."""
    with torch.device("meta"):
        return feature_strides(BUILDERS[builder](weights=None, weights_backbone=None, num_classes=2).backbone)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
