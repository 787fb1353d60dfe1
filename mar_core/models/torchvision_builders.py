"""torchvision's FPN detectors by builder name, built as the stock builder builds them.

``build_torchvision(spec, num_classes)`` calls ``torchvision.models.detection.<spec.torchvision>(
weights=None, weights_backbone=None, num_classes=K, min_size=..., max_size=...)`` (nothing is
downloaded); its ``state_dict`` is the stock builder's, key for key, so a student's ``model.pt``
loads into that call as it is. ``builder_kwargs`` are those keyword arguments (the model card
records them). Two additions that leave the state_dict alone:

- ``trainable_backbone_layers`` freezes the parameters of the trunk's first stages as torchvision
  does for a pretrained trunk (torchvision ignores it without weights; this project applies it);
- Mask / Keypoint R-CNN carry their mask / keypoint heads along, untrained: the datasets here
  hold boxes only, so in training the RoI heads run their box branch alone
  (``BoxTrainingRoIHeads``) and the extra heads' parameters are frozen; in eval mode the model
  predicts masks / keypoints as the stock one does (from the weights it was given). Distillation
  reads only the detection part (FPN and RPN head), as for Faster R-CNN.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn
from torchvision.models import detection
from torchvision.models.detection.roi_heads import RoIHeads

from mar_core import names
from mar_core.spec import ModelSpec

BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "retinanet_resnet50_fpn": detection.retinanet_resnet50_fpn,
    "retinanet_resnet50_fpn_v2": detection.retinanet_resnet50_fpn_v2,
    "fasterrcnn_resnet50_fpn": detection.fasterrcnn_resnet50_fpn,
    "fasterrcnn_resnet50_fpn_v2": detection.fasterrcnn_resnet50_fpn_v2,
    "fasterrcnn_mobilenet_v3_large_fpn": detection.fasterrcnn_mobilenet_v3_large_fpn,
    "fasterrcnn_mobilenet_v3_large_320_fpn": detection.fasterrcnn_mobilenet_v3_large_320_fpn,
    "fcos_resnet50_fpn": detection.fcos_resnet50_fpn,
    "maskrcnn_resnet50_fpn": detection.maskrcnn_resnet50_fpn,
    "maskrcnn_resnet50_fpn_v2": detection.maskrcnn_resnet50_fpn_v2,
    "keypointrcnn_resnet50_fpn": detection.keypointrcnn_resnet50_fpn,
}
assert tuple(BUILDERS) == tuple(names.TORCHVISION_BUILDERS), "builders and mar_core.names disagree"

# The RoI-head modules of the extra heads, frozen and skipped in training.
EXTRA_HEAD_MODULES = {
    "mask": ("mask_head", "mask_predictor"),
    "keypoint": ("keypoint_head", "keypoint_predictor"),
}
RESNET_STAGES = ("layer4", "layer3", "layer2", "layer1", "conv1")  # torchvision's order of unfreezing


class BoxTrainingRoIHeads(RoIHeads):
    """``RoIHeads`` whose training forward runs the box branch only (no mask or keypoint
    targets needed); eval is the stock forward. Same modules, same state_dict."""

    def forward(self, features, proposals, image_shapes, targets=None):
        if not self.training:
            return super().forward(features, proposals, image_shapes, targets)
        pools = self.mask_roi_pool, self.keypoint_roi_pool
        self.mask_roi_pool = self.keypoint_roi_pool = None  # RoIHeads' own test of "has a mask/keypoint head"
        try:
            return super().forward(features, proposals, image_shapes, targets)
        finally:
            self.mask_roi_pool, self.keypoint_roi_pool = pools


def builder_kwargs(spec: ModelSpec, num_classes: int) -> dict[str, Any]:
    """The keyword arguments of the builder call besides ``weights`` / ``weights_backbone``
    (JSON values: a multi-scale ``min_size`` is a list; torchvision takes it as a tuple)."""
    assert spec.torchvision is not None
    kwargs: dict[str, Any] = {
        "num_classes": num_classes,
        "min_size": spec.min_size,
        "max_size": spec.max_size,
    }
    if spec.num_keypoints is not None:
        kwargs["num_keypoints"] = spec.num_keypoints
    return kwargs


def build_torchvision(spec: ModelSpec, num_classes: int) -> nn.Module:
    """The stock detector of builder ``spec.torchvision`` for ``num_classes`` (background included)."""
    assert spec.torchvision is not None
    kwargs = builder_kwargs(spec, num_classes)
    if isinstance(kwargs["min_size"], list):
        kwargs["min_size"] = tuple(kwargs["min_size"])
    model = BUILDERS[spec.torchvision](weights=None, weights_backbone=None, **kwargs)
    info = names.TORCHVISION_BUILDERS[spec.torchvision]
    if info.extra_head is not None:
        model.roi_heads.__class__ = BoxTrainingRoIHeads
        for module in EXTRA_HEAD_MODULES[info.extra_head]:
            getattr(model.roi_heads, module).requires_grad_(False)
    if spec.trainable_backbone_layers is not None:
        freeze_trunk(model.backbone.body, info.trunk, spec.trainable_backbone_layers)
    return model


def freeze_trunk(body: nn.Module, trunk: str, trainable_layers: int) -> None:
    """Freeze all but the last ``trainable_layers`` stages of the trunk, by torchvision's rule
    (``_resnet_fpn_extractor`` / ``_mobilenet_extractor``)."""
    if trunk == "mobilenet_v3_large":
        blocks = list(body.named_children())
        stages = (
            [0] + [i for i, (_, b) in enumerate(blocks) if getattr(b, "_is_cn", False)] + [len(blocks) - 1]
        )
        freeze_before = len(blocks) if trainable_layers == 0 else stages[len(stages) - trainable_layers]
        for _, block in blocks[:freeze_before]:
            block.requires_grad_(False)
        return
    train = list(RESNET_STAGES[:trainable_layers]) + (["bn1"] if trainable_layers == 5 else [])
    for name, param in body.named_parameters():
        if not name.startswith(tuple(train)):
            param.requires_grad_(False)
