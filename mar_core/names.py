"""Names of every registered component, kept torch-free so the API can validate specs.

The registries in ``mar_core.models`` and ``mar_core.data`` check at import time that they
implement exactly these names. Distillation methods are registered in ``mar_core.methods``.
"""

from typing import NamedTuple

from mar_core.methods import METHODS

DETECTOR_ARCHS = ("retinanet", "fcos", "fasterrcnn")  # also the detector families
TWO_STAGE_ARCHS = frozenset({"fasterrcnn"})  # the others are one-stage
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v3_large")
DATASET_FORMATS = ("coco", "voc", "yolo")
ON_BAD_IMAGE = ("refuse", "skip")  # an undecodable image file: refuse the dataset, or leave it out
DISTILL_METHODS = tuple(METHODS)
NORM_LAYERS = ("group", "batch", "frozen_batch")


class TorchvisionBuilder(NamedTuple):
    """What a spec needs to know of a ``torchvision.models.detection`` builder without torch:
    its family (``DETECTOR_ARCHS``), its default sizes (``min_size`` a tuple = multi-scale
    training), its trunk, the most ``trainable_backbone_layers`` it takes, and the extra RoI
    heads it carries (``mask`` / ``keypoint``) beside the detection ones."""

    family: str
    min_size: tuple[int, ...]
    max_size: int
    trunk: str
    max_trainable_layers: int
    extra_head: str | None = None


_R50 = {"trunk": "resnet50", "max_trainable_layers": 5}
_MOBILENET = {"trunk": "mobilenet_v3_large", "max_trainable_layers": 6}
_KEYPOINT_SIZES = (640, 672, 704, 736, 768, 800)

# The torchvision FPN detectors a spec may name as ``{"torchvision": "<builder>"}``.
TORCHVISION_BUILDERS: dict[str, TorchvisionBuilder] = {
    "retinanet_resnet50_fpn": TorchvisionBuilder("retinanet", (800,), 1333, **_R50),
    "retinanet_resnet50_fpn_v2": TorchvisionBuilder("retinanet", (800,), 1333, **_R50),
    "fasterrcnn_resnet50_fpn": TorchvisionBuilder("fasterrcnn", (800,), 1333, **_R50),
    "fasterrcnn_resnet50_fpn_v2": TorchvisionBuilder("fasterrcnn", (800,), 1333, **_R50),
    "fasterrcnn_mobilenet_v3_large_fpn": TorchvisionBuilder("fasterrcnn", (800,), 1333, **_MOBILENET),
    "fasterrcnn_mobilenet_v3_large_320_fpn": TorchvisionBuilder("fasterrcnn", (320,), 640, **_MOBILENET),
    "fcos_resnet50_fpn": TorchvisionBuilder("fcos", (800,), 1333, **_R50),
    "maskrcnn_resnet50_fpn": TorchvisionBuilder("fasterrcnn", (800,), 1333, **_R50, extra_head="mask"),
    "maskrcnn_resnet50_fpn_v2": TorchvisionBuilder("fasterrcnn", (800,), 1333, **_R50, extra_head="mask"),
    "keypointrcnn_resnet50_fpn": TorchvisionBuilder(
        "fasterrcnn", _KEYPOINT_SIZES, 1333, **_R50, extra_head="keypoint"
    ),
}

# Students by a short name (``mar distill --student``): this project's small GroupNorm detectors
# (a torchvision builder's name is the other way to name a student).
STUDENT_PRESETS: dict[str, dict[str, object]] = {
    "retinanet-r18": {"arch": "retinanet", "backbone": "resnet18", "fpn_channels": 64},
    "fcos-r18": {"arch": "fcos", "backbone": "resnet18", "fpn_channels": 64},
    "fasterrcnn-r18": {"arch": "fasterrcnn", "backbone": "resnet18", "fpn_channels": 64},
}

# torchvision detectors without an FPN: refused, saying why.
NON_FPN_BUILDERS = ("ssd300_vgg16", "ssdlite320_mobilenet_v3_large")


def is_two_stage(arch: str) -> bool:
    """Whether detector family ``arch`` is two-stage (RPN + RoI heads); the one question every
    caller asks (of a spec: ``ModelSpec.two_stage``)."""
    return arch in TWO_STAGE_ARCHS


# What a finished model can be exported to (``mar export``, the job's ``export`` option).
EXPORT_FORMATS = ("onnx", "torchscript")
# What a job's webhooks are told (Standard Webhooks event types); job.progress is throttled.
# A job's priority, lowest first (its rank is the index); "high" only for keys allowed it.
PRIORITIES = ("low", "normal", "high")
POOL_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # a worker pool (names from the deployment's MAR_POOLS)

WEBHOOK_EVENTS = ("job.succeeded", "job.failed", "job.cancelled", "job.progress")


def is_torchvision_weights_name(ref: str) -> bool:
    """``"ResNet18_Weights.IMAGENET1K_V1"``-style references (a weights enum member, not a path)."""
    return "/" not in ref and "_Weights." in ref
