"""Fitting a state_dict file to a detector spec, and saying what a misfit file looks like.

- ``infer_num_classes``: the class count (background included) from the classifier's shape
  (RetinaNet / FCOS: ``head.classification_head.cls_logits``, anchors x classes outputs;
  R-CNNs: ``roi_heads.box_predictor.cls_score``); Keypoint R-CNN's keypoint count likewise.
- ``fit_batchnorm_buffers``: torchvision's zoo checkpoints hold ``FrozenBatchNorm2d`` layers,
  without ``num_batches_tracked``; builders without weights make ``BatchNorm2d``, with it. The
  buffer is added (0) or dropped to fit the model; nothing else is changed.
- ``guess_builders``: the torchvision builders whose state_dict has exactly the file's keys and
  shapes (models built on the meta device: no memory, no init; cached), for error messages
  such as "this looks like retinanet_resnet50_fpn_v2".
"""

from __future__ import annotations

from functools import lru_cache

import torch

from mar_core import names
from mar_core.errors import CheckpointError
from mar_core.models.registry import build_detector
from mar_core.spec import ModelSpec

CLASSIFIER_WEIGHTS = {
    "retinanet": "head.classification_head.cls_logits.weight",
    "fcos": "head.classification_head.cls_logits.weight",
    "fasterrcnn": "roi_heads.box_predictor.cls_score.weight",
}
KEYPOINT_WEIGHTS = "roi_heads.keypoint_predictor.kps_score_lowres.weight"  # in x keypoints x 4 x 4
BN_STEPS = ".num_batches_tracked"
Shapes = dict[str, tuple[int, ...]]


@lru_cache(maxsize=64)
def _shapes(spec_json: str, num_classes: int) -> Shapes:
    with torch.device("meta"):
        model = build_detector(ModelSpec.model_validate_json(spec_json), num_classes)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def state_shapes(spec: ModelSpec, num_classes: int) -> Shapes:
    """Key -> shape of the state_dict of ``build_detector(spec, num_classes)`` (cached)."""
    return _shapes(spec.model_dump_json(), num_classes)


def with_keypoints_of(spec: ModelSpec, state: dict[str, torch.Tensor]) -> ModelSpec:
    """``spec`` with ``num_keypoints`` read from a Keypoint R-CNN state_dict when unset."""
    info = names.TORCHVISION_BUILDERS.get(spec.torchvision or "")
    if info is None or info.extra_head != "keypoint" or spec.num_keypoints is not None:
        return spec
    if KEYPOINT_WEIGHTS not in state:
        return spec
    return spec.model_copy(update={"num_keypoints": int(state[KEYPOINT_WEIGHTS].shape[1])})


def infer_num_classes(spec: ModelSpec, state: dict[str, torch.Tensor], param: str | None = None) -> int:
    """Classes (background included) of the classifier in ``state``, for a ``spec`` model."""
    key = CLASSIFIER_WEIGHTS[spec.family]
    if key not in state:
        raise CheckpointError(
            f"the checkpoint has no {key}, so its class count is unknown (a {spec.family} detector "
            f"has one){builder_hint(spec, state)}",
            param,
        )
    per_class = state_shapes(spec, 2)[key][0] // 2  # RetinaNet: anchors per location
    outputs = int(state[key].shape[0])
    if outputs % per_class or outputs // per_class < 2:
        raise CheckpointError(
            f"{key} has {outputs} outputs, not a multiple >= 2 of the {per_class} a class takes in "
            f"this model{builder_hint(spec, state)}",
            param,
        )
    return outputs // per_class


def fit_batchnorm_buffers(expected: Shapes, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with BatchNorm's ``num_batches_tracked`` added (zero) where the model has the
    buffer and the file has that layer without it, and dropped where the model lacks it."""
    fitted = {k: v for k, v in state.items() if not (k.endswith(BN_STEPS) and k not in expected)}
    for key in expected:
        layer = key[: -len(BN_STEPS)]
        if key.endswith(BN_STEPS) and key not in fitted and f"{layer}.running_mean" in state:
            fitted[key] = torch.zeros((), dtype=torch.long)
    return fitted


def _without_bn_steps(shapes: Shapes) -> Shapes:
    return {k: s for k, s in shapes.items() if not k.endswith(BN_STEPS)}


def guess_builders(state: dict[str, torch.Tensor]) -> list[str]:
    """The torchvision builders (``names.TORCHVISION_BUILDERS``) whose state_dict has exactly the
    keys and shapes of ``state`` (``num_batches_tracked`` aside), for the class count it holds."""
    given = _without_bn_steps({k: tuple(v.shape) for k, v in state.items()})
    matches = []
    for name in names.TORCHVISION_BUILDERS:
        spec = with_keypoints_of(ModelSpec(torchvision=name), state)
        if set(_without_bn_steps(state_shapes(spec, 2))) != set(given):  # cheap: keys first
            continue
        try:
            num_classes = infer_num_classes(spec, state)
        except CheckpointError:
            continue
        if _without_bn_steps(state_shapes(spec, num_classes)) == given:
            matches.append(name)
    return matches


def builder_hint(spec: ModelSpec | None, state: dict[str, torch.Tensor]) -> str:
    """``"; this looks like <builder>: ..."`` when the keys fit a torchvision builder other than
    ``spec``'s, a hint on BatchNorm buffers against a GroupNorm spec, else ``""``."""
    guesses = [g for g in guess_builders(state) if spec is None or g != spec.torchvision]
    if guesses:
        return (
            f"; this looks like {' or '.join(guesses)}: name it as "
            f'{{"torchvision": "{guesses[0]}"}} (teacher.model)'
        )
    if spec is not None and spec.norm == "group" and any(k.endswith(".running_mean") for k in state):
        return (
            "; the checkpoint holds BatchNorm buffers (running_mean) while model.norm is group: a "
            'checkpoint of a torchvision builder is named as {"torchvision": "<builder>"} '
            f"(teacher.model; builders: {', '.join(names.TORCHVISION_BUILDERS)})"
        )
    return ""
