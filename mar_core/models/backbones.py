"""Backbone + FPN builders with a configurable FPN width (torchvision's extractors fix 256)."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models import mobilenet_v3_large, resnet
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock, LastLevelMaxPool, LastLevelP6P7

from mar_core.models.norms import NormFactory

RESNETS = {
    "resnet18": resnet.resnet18,
    "resnet34": resnet.resnet34,
    "resnet50": resnet.resnet50,
    "resnet101": resnet.resnet101,
}


def resnet_fpn(
    name: str, norm: NormFactory, fpn_channels: int, returned_layers: list[int], extra: ExtraFPNBlock
) -> BackboneWithFPN:
    """ResNet trunk (no pretrained weights, every stage trainable) + FPN on ``returned_layers``."""
    body = RESNETS[name](weights=None, norm_layer=norm)
    stage2_channels = body.inplanes // 8  # 64 for BasicBlock nets, 256 for Bottleneck nets
    in_channels = [stage2_channels * 2 ** (i - 1) for i in returned_layers]
    return_layers = {f"layer{k}": str(v) for v, k in enumerate(returned_layers)}
    return BackboneWithFPN(body, return_layers, in_channels, fpn_channels, extra_blocks=extra)


def mobilenet_fpn(norm: NormFactory, fpn_channels: int, extra: ExtraFPNBlock) -> BackboneWithFPN:
    """MobileNetV3-Large trunk + FPN on its last two stages (as torchvision's mobilenet FPN)."""
    body = mobilenet_v3_large(weights=None, norm_layer=norm).features
    stage_indices = [0] + [i for i, b in enumerate(body) if getattr(b, "_is_cn", False)] + [len(body) - 1]
    returned = [len(stage_indices) - 2, len(stage_indices) - 1]
    return_layers = {f"{stage_indices[k]}": str(v) for v, k in enumerate(returned)}
    in_channels = [body[stage_indices[i]].out_channels for i in returned]
    return BackboneWithFPN(body, return_layers, in_channels, fpn_channels, extra_blocks=extra)


def build_backbone(name: str, norm: NormFactory, fpn_channels: int, two_stage: bool) -> BackboneWithFPN:
    """One-stage detectors take P3-P7 (P6/P7 from P5); two-stage take P2-P5 + max-pooled P6."""
    if two_stage:
        extra: ExtraFPNBlock = LastLevelMaxPool()
        layers = [1, 2, 3, 4]
    else:
        extra = LastLevelP6P7(fpn_channels, fpn_channels)
        layers = [2, 3, 4]
    if name == "mobilenet_v3_large":
        return mobilenet_fpn(norm, fpn_channels, extra)
    return resnet_fpn(name, norm, fpn_channels, layers, extra)


@torch.no_grad()
def feature_strides(backbone: nn.Module, probe_size: int = 256) -> OrderedDict[str, int]:
    """Stride of every FPN output, measured with one forward of a ``probe_size`` square image."""
    was_training = backbone.training
    backbone.eval()
    feats = backbone(torch.zeros(1, 3, probe_size, probe_size))
    backbone.train(was_training)
    return OrderedDict((k, max(1, round(probe_size / v.shape[-1]))) for k, v in feats.items())
