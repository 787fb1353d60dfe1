"""The Python that rebuilds a detector with torchvision calls only (the model card's ``snippet``).

A pipeline that loads a distilled student should not need this project: ``model.json`` carries
a snippet that, run with ``exec``, defines ``model``, the same architecture with freshly
initialised weights, so that ``model.load_state_dict(torch.load("model.pt"))`` works with
torch and torchvision alone. For a torchvision builder it is the builder call; for this
project's own detectors (GroupNorm, narrow FPN, scaled anchors) the constructor calls, with
every number read from the built model (FPN layers and widths, anchor sizes, RPN limits).
"""

from __future__ import annotations

from torch import nn
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from mar_core.models.torchvision_builders import builder_kwargs
from mar_core.spec import ModelSpec

NORMS = {
    "group": "def norm(channels):\n    return nn.GroupNorm(math.gcd(32, channels), channels)\n",
    "batch": "norm = nn.BatchNorm2d\n",
    "frozen_batch": "from torchvision.ops import FrozenBatchNorm2d as norm\n",
}
HEAD_NORM = (
    "def head_norm(channels):\n    return nn.GroupNorm(math.gcd(32, max(1, channels // 2)), channels)\n"
)


def _call_args(kwargs: dict) -> str:
    return ", ".join(f"{k}={tuple(v) if isinstance(v, list) else v!r}" for k, v in kwargs.items())


def rebuild_snippet(spec: ModelSpec, num_classes: int, model: nn.Module) -> str:
    """Python source that defines ``model``: ``model`` rebuilt (``build_detector(spec,
    num_classes)``) with torch and torchvision only."""
    if spec.torchvision is not None:
        kwargs = builder_kwargs(spec, num_classes)
        return (
            "import torchvision\n\n"
            f"model = torchvision.models.detection.{spec.torchvision}("
            f"weights=None, weights_backbone=None, {_call_args(kwargs)})\n"
        )
    lines = [
        "import math\n",
        "from torch import nn",
        "from torchvision.models import mobilenet_v3_large, resnet",
        "from torchvision.models import detection",
        "from torchvision.models.detection import anchor_utils, backbone_utils, faster_rcnn, fcos, retinanet, rpn",
        "from torchvision.ops import MultiScaleRoIAlign, feature_pyramid_network\n",
        NORMS[spec.norm or "group"],
        HEAD_NORM,
    ]
    fpn = model.backbone.fpn
    in_channels = [block[0].in_channels for block in fpn.inner_blocks]
    extra = fpn.extra_blocks
    if isinstance(extra, LastLevelP6P7):
        extra_code = f"feature_pyramid_network.LastLevelP6P7({extra.p6.in_channels}, {extra.p6.out_channels})"
    else:
        extra_code = "feature_pyramid_network.LastLevelMaxPool()"
    if spec.backbone == "mobilenet_v3_large":
        lines.append("body = mobilenet_v3_large(weights=None, norm_layer=norm).features")
    else:
        lines.append(f"body = resnet.{spec.backbone}(weights=None, norm_layer=norm)")
    c = model.backbone.out_channels
    lines.append(
        f"backbone = backbone_utils.BackboneWithFPN(body, {dict(model.backbone.body.return_layers)!r}, "
        f"{in_channels!r}, {c}, extra_blocks={extra_code})"
    )
    generator = model.rpn.anchor_generator if spec.family == "fasterrcnn" else model.anchor_generator
    lines.append(f"anchors = anchor_utils.AnchorGenerator({generator.sizes!r}, {generator.aspect_ratios!r})")
    sizes = f"min_size={tuple(model.transform.min_size)!r}, max_size={model.transform.max_size!r}"
    k = num_classes
    if spec.family == "retinanet":
        lines += [
            f"head = retinanet.RetinaNetHead({c}, {model.head.classification_head.num_anchors}, {k}, norm_layer=head_norm)",
            f"model = detection.RetinaNet(backbone, {k}, anchor_generator=anchors, head=head, {sizes})",
        ]
    elif spec.family == "fcos":
        lines += [
            f"head = fcos.FCOSHead({c}, 1, {k}, num_convs=0)",
            f"head.classification_head = fcos.FCOSClassificationHead({c}, 1, {k}, norm_layer=head_norm)",
            f"head.regression_head = fcos.FCOSRegressionHead({c}, 1, norm_layer=head_norm)",
            f"model = detection.FCOS(backbone, {k}, anchor_generator=anchors, head=head, {sizes})",
        ]
    else:
        rpn, roi = model.rpn, model.roi_heads
        pool = roi.box_roi_pool
        lines += [
            f"roi_pool = MultiScaleRoIAlign({pool.featmap_names!r}, output_size={pool.output_size!r}, "
            f"sampling_ratio={pool.sampling_ratio!r})",
            f"model = detection.FasterRCNN(backbone, {k}, rpn_anchor_generator=anchors, "
            f"rpn_head=rpn.RPNHead({c}, anchors.num_anchors_per_location()[0]), box_roi_pool=roi_pool, "
            f"box_head=faster_rcnn.TwoMLPHead({roi.box_head.fc6.in_features}, {roi.box_head.fc7.out_features}), "
            f"rpn_pre_nms_top_n_train={rpn._pre_nms_top_n['training']}, "
            f"rpn_post_nms_top_n_train={rpn._post_nms_top_n['training']}, "
            f"rpn_pre_nms_top_n_test={rpn._pre_nms_top_n['testing']}, "
            f"rpn_post_nms_top_n_test={rpn._post_nms_top_n['testing']}, "
            f"box_batch_size_per_image={roi.fg_bg_sampler.batch_size_per_image}, {sizes})",
        ]
    return "\n".join(lines) + "\n"
