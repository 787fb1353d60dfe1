"""Names of every registered component, kept torch-free so the API can validate specs.

The registries in ``mar_core.models`` and ``mar_core.data`` check at import time that they
implement exactly these names. Distillation methods are registered in ``mar_core.methods``.
"""

from mar_core.methods import METHODS

DETECTOR_ARCHS = ("retinanet", "fcos", "fasterrcnn")
TWO_STAGE_ARCHS = frozenset({"fasterrcnn"})  # the others are one-stage
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v3_large")
DATASET_FORMATS = ("coco", "voc")
DISTILL_METHODS = tuple(METHODS)
NORM_LAYERS = ("group", "batch", "frozen_batch")


def is_two_stage(arch: str) -> bool:
    """Whether detector ``arch`` is two-stage (RPN + RoI heads); the one question every caller asks."""
    return arch in TWO_STAGE_ARCHS
