"""The distillation wrapper: student + adapters + KD losses, reading a frozen teacher.

``Distiller(images, targets)`` returns the student's detection losses under their own names
plus weighted KD terms named ``kd/<term>`` (the trainer sums them); the terms come from the loss
module registered for the spec's method (``kd_loss.build_kd_loss``). The teacher sees the
student's transformed, padded batch (``ImageList.tensors``): no image is preprocessed twice,
and only its backbone (FPN) and classification tower run: no post-processing, no NMS.
The teacher is not a registered sub-module: it is absent from ``state_dict()`` and from the
optimizer, stays in eval mode and never gets a gradient.

FPN levels are paired by stride (``pair_levels``): a two-stage FPN has strides 4..64, a
one-stage one 8..128, torchvision's MobileNetV3 FPN 32, 32, 64; levels only one side has are
left out (``levels_message`` says which are distilled). The teacher's classes may differ from
the dataset's: the ``ClassMapping`` (``mar_core.models.class_map``) is held here for losses that
read class scores. The head peers (``uses_head``: ``logit_kd``, ``crosskd``) read the heads of
two one-stage detectors of one family and compare class scores channel by channel, so they need
the identity mapping; the others read features and tower channels. A loss that reads a two-stage
box classifier (``uses_box_classifier``: ``logit_kd`` on Faster R-CNN) gets the student's class
logits on its sampled proposals and the teacher's on the same proposals (the teacher's RoI pooler,
box head and predictor run on its own FPN maps): same classes, same order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mar_core.distill.capture import FeatureCapture
from mar_core.distill.feature_loss import resize_to
from mar_core.distill.kd_loss import BoxClassifierInputs, HeadInputs, adapter, build_kd_loss
from mar_core.distill.teacher_cache import Key, TeacherCache, stack_entries
from mar_core.engine.precision import TEACHER_DTYPES, autocast_in
from mar_core.engine.trainer import HookBase, Trainer
from mar_core.methods import MethodSpec
from mar_core.models.class_map import ClassMapping
from mar_core.models.registry import (
    BOX_POOL_MODULE,
    BOX_PREDICTOR_MODULE,
    CLS_TOWER_MODULES,
    FEATURE_MODULE,
)
from mar_core.names import is_two_stage

log = logging.getLogger(__name__)

TRANSFORM_MODULE = "transform"
DEFAULT_KD_WARMUP = 500


@dataclass(frozen=True)
class LevelPair:
    """A distilled level: the student's FPN level ``student`` (``student_index``-th output) and
    the teacher's ``teacher`` of the same ``stride``."""

    stride: int
    student: str
    teacher: str
    student_index: int
    teacher_index: int


def pair_levels(student: dict[str, int], teacher: dict[str, int]) -> tuple[list[LevelPair], list[str]]:
    """Pair FPN levels (name -> stride, in output order) by stride; the k-th student level of a
    stride takes the k-th teacher level of it (the last one when the teacher has fewer). Returns
    the pairs and the left-out levels, as ``"student <name> (stride s)"`` / ``"teacher ..."``."""
    by_stride: dict[int, list[tuple[int, str]]] = {}
    for i, (name, stride) in enumerate(teacher.items()):
        by_stride.setdefault(stride, []).append((i, name))
    pairs, seen, left = [], {}, []
    for i, (name, stride) in enumerate(student.items()):
        if stride not in by_stride:
            left.append(f"student {name} (stride {stride})")
            continue
        k = seen[stride] = seen.get(stride, -1) + 1
        t_index, t_name = by_stride[stride][min(k, len(by_stride[stride]) - 1)]
        pairs.append(LevelPair(stride, name, t_name, i, t_index))
    used = {p.teacher for p in pairs}
    left += [f"teacher {name} (stride {stride})" for name, stride in teacher.items() if name not in used]
    return pairs, left


def levels_message(student: dict[str, int], teacher: dict[str, int]) -> str:
    """Which FPN levels are distilled (``pair_levels``) and which are left out, in one line."""
    pairs, left = pair_levels(student, teacher)
    listed = ", ".join(f"stride {p.stride}: student {p.student} <- teacher {p.teacher}" for p in pairs)
    return f"distilled FPN levels (paired by stride): {listed or 'none'}" + (
        f"; left out: {', '.join(left)}" if left else ""
    )


ONE_STAGE_HEADS = ("retinanet", "fcos")  # families whose heads a ``uses_head`` loss reads


def _check_class_scores(
    method: str, student: nn.Module, teacher: nn.Module, s_arch: str, t_arch: str, two_stage: bool
) -> None:
    """A loss that compares class scores channel by channel needs two detectors of one kind with
    one class count: one-stage heads of the same family (``ONE_STAGE_HEADS``), or two-stage box
    classifiers."""
    if two_stage:
        fits, reads = is_two_stage(s_arch) and is_two_stage(t_arch), "box classifier"
        need = "a two-stage teacher"
    else:
        fits, reads = s_arch in ONE_STAGE_HEADS and s_arch == t_arch, "head"
        need = f"a student and a teacher of the same one-stage family ({', '.join(ONE_STAGE_HEADS)})"
    if not fits:
        raise ValueError(
            f"distill method {method} reads the detection {reads}s: it needs {need}; got {s_arch} and {t_arch}"
        )
    if two_stage:
        s_out = student.roi_heads.box_predictor.cls_score.out_features
        t_out = teacher.roi_heads.box_predictor.cls_score.out_features
    else:
        s_out = student.head.classification_head.cls_logits.out_channels
        t_out = teacher.head.classification_head.cls_logits.out_channels
    if s_out != t_out:
        raise ValueError(
            f"distill method {method} compares class scores: the student's {reads} has {s_out} outputs, "
            f"the teacher's {t_out} (the same classes{'' if two_stage else ' and anchors'} are needed)"
        )


class Distiller(nn.Module):
    """Args: student/teacher detectors, the distill spec (any method's), both detector families
    (``ModelSpec.family``) and the class mapping of teacher to dataset labels (``None``: the same)."""

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        cfg: MethodSpec,
        student_arch: str,
        teacher_arch: str,
        class_map: ClassMapping | None = None,
    ):
        super().__init__()
        self.student = student
        object.__setattr__(self, "teacher", teacher)  # not registered: no state, no grad
        self.cfg = cfg.with_weight_defaults(is_two_stage(student_arch))  # unset weights: per detector family
        self.class_map = class_map
        self.kd_scale = 1.0
        self.teacher_cache: TeacherCache | None = None  # set by the job when its input allows one
        self.student_tower = CLS_TOWER_MODULES[student_arch]
        object.__setattr__(
            self, "teacher_tower", dict(teacher.named_modules())[CLS_TOWER_MODULES[teacher_arch]]
        )
        c_s, c_t = student.backbone.out_channels, teacher.backbone.out_channels
        self.levels, self.left_out = pair_levels(student.mar_strides, teacher.mar_strides)
        if not self.levels:
            raise ValueError(
                f"no FPN level of the student (strides {sorted(set(student.mar_strides.values()))}) "
                f"shares a stride with the teacher's ({sorted(set(teacher.mar_strides.values()))})"
            )
        self.num_levels = len(self.levels)
        log.debug("%s", self.levels_message)  # the job logs it once (mar_core.teacher)
        self.adapters = nn.ModuleList(adapter(c_s, c_t, cfg.adapter) for _ in range(self.num_levels))
        self.kd_loss = build_kd_loss(self.cfg, c_t, self.num_levels, is_two_stage(student_arch), c_s)
        box_kd = self.kd_loss.uses_box_classifier
        self.capture = FeatureCapture(
            student,
            [
                TRANSFORM_MODULE,
                FEATURE_MODULE,
                self.student_tower,
                *([BOX_PREDICTOR_MODULE] if box_kd else []),
            ],
            input_paths=(BOX_POOL_MODULE,) if box_kd else (),
        )
        if self.kd_loss.uses_head or box_kd:
            _check_class_scores(cfg.method, student, teacher, student_arch, teacher_arch, box_kd)
            if class_map is not None and not class_map.identity:
                raise ValueError(
                    f"distill method {cfg.method} compares class scores channel by channel: it needs the "
                    f"teacher's classes in the dataset's order; {class_map.describe()}"
                )
        teacher.eval().requires_grad_(False)
        if TEACHER_DTYPES[self.cfg.teacher_precision] is not None:
            teacher.to(memory_format=torch.channels_last)  # faster in reduced precision (not in fp32)

    @property
    def levels_message(self) -> str:
        """Which levels are distilled, and which are left out (one side only)."""
        return levels_message(self.student.mar_strides, self.teacher.mar_strides)

    @property
    def has_unused_parameters(self) -> bool:
        """True when trainable parameters never get a gradient: the adapters when the KD terms do
        not read them, e.g. MAR without its feature loss (``DistributedDataParallel`` then needs
        ``find_unused_parameters``)."""
        return not self.kd_loss.trains_adapters and any(p.requires_grad for p in self.adapters.parameters())

    def train(self, mode: bool = True) -> Distiller:
        super().train(mode)
        self.teacher.eval()
        return self

    def _apply(self, fn, recurse=True):  # .to(device) / .float() also reach the teacher
        super()._apply(fn, recurse)
        self.teacher._apply(fn, recurse)
        return self

    def teacher_features(
        self, batch: Tensor, keys: Sequence[Key] | None = None
    ) -> tuple[list[Tensor], list[Tensor], dict[str, Tensor]]:
        """FPN outputs and classification-tower outputs of the teacher, one per distilled level,
        and its whole FPN output (name -> ``B x C x H x W``), float32 whatever
        ``teacher_precision`` it ran in. With a ``teacher_cache`` and ``keys`` (one
        ``(image_id, flipped)`` per image of ``batch``), the teacher runs only for the images it
        has not seen at this padded size."""
        if self.teacher_cache is None or keys is None:
            fpn, towers = self._teacher_forward(batch)
        else:
            fpn, towers = self._cached_teacher_forward(batch, keys)
        feats = list(fpn.values())
        return (
            [feats[p.teacher_index] for p in self.levels],
            [towers[p.teacher_index] for p in self.levels],
            fpn,
        )

    def _cached_teacher_forward(
        self, batch: Tensor, keys: Sequence[Key]
    ) -> tuple[dict[str, Tensor], dict[int, Tensor]]:
        cache = self.teacher_cache
        input_hw = (int(batch.shape[-2]), int(batch.shape[-1]))
        found = cache.lookup(keys, input_hw)
        missing = [i for i, e in enumerate(found) if e is None]
        cache.stats.hits += len(keys) - len(missing)
        cache.stats.misses += len(missing)
        if len(missing) == len(keys):
            fpn, towers = self._teacher_forward(batch)
            cache.store(keys, input_hw, fpn, towers)
            return fpn, towers
        hit = [i for i, e in enumerate(found) if e is not None]
        fpn, towers = stack_entries([found[i] for i in hit], batch.device)
        if not missing:
            return fpn, towers
        fpn_m, towers_m = self._teacher_forward(batch[missing])  # each image padded as in the batch
        cache.store([keys[i] for i in missing], input_hw, fpn_m, towers_m)
        return (
            {n: _interleave(len(keys), hit, fpn[n], missing, fpn_m[n]) for n in fpn},
            {j: _interleave(len(keys), hit, towers[j], missing, towers_m[j]) for j in towers},
        )

    @torch.no_grad()
    def _teacher_forward(self, batch: Tensor) -> tuple[dict[str, Tensor], dict[int, Tensor]]:
        """The teacher's FPN output (name -> ``B x C x H x W``) and its classification tower on
        the distilled levels (FPN index -> ``B x C x H x W``), float32.

        Under ``no_grad``, not ``inference_mode``: the KD losses save these tensors for their
        backward, which inference tensors refuse, and ``mar bench perf`` measured no gain from it."""
        dtype = TEACHER_DTYPES[self.cfg.teacher_precision]
        with autocast_in(batch.device.type, dtype):
            if dtype is not None:
                batch = batch.contiguous(memory_format=torch.channels_last)
            fpn = self.teacher.backbone(batch)
            feats = list(fpn.values())
            towers = {i: self.teacher_tower(feats[i]) for i in sorted({p.teacher_index for p in self.levels})}
        if dtype is not None:
            fpn = {name: f.float() for name, f in fpn.items()}
            towers = {i: t.float() for i, t in towers.items()}
        return dict(fpn), towers

    @torch.no_grad()
    def teacher_box_logits(
        self, fpn: dict[str, Tensor], proposals: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> Tensor:
        """The teacher's class logits (``R x (K + 1)``) on ``proposals`` (one ``R_i x 4`` xyxy
        tensor per image, in the padded batch's pixels), pooled from its own FPN maps."""
        heads = self.teacher.roi_heads
        pooled = heads.box_roi_pool(fpn, proposals, image_shapes)
        return heads.box_predictor(heads.box_head(pooled))[0]

    def forward(self, images: list[Tensor], targets: list[dict]) -> dict[str, Tensor]:
        self.capture.clear()
        losses = self.student(images, targets)
        image_list, targets_t = self.capture.single(TRANSFORM_MODULE)
        s_all = list(self.capture.single(FEATURE_MODULE).values())
        s_feats = [s_all[p.student_index] for p in self.levels]
        s_cls = [self.capture.outputs[self.student_tower][p.student_index] for p in self.levels]
        t_feats, t_cls, t_fpn = self.teacher_features(image_list.tensors, sample_keys(targets))
        t_feats = [resize_to(t, s.shape[-2:]) for s, t in zip(s_feats, t_feats)]
        t_cls = [resize_to(t, s.shape[-2:]) for s, t in zip(s_cls, t_cls)]
        padded_h, padded_w = image_list.tensors.shape[-2:]
        strides = [(padded_h / f.shape[-2], padded_w / f.shape[-1]) for f in s_feats]
        boxes = [t["boxes"] for t in targets_t]
        adapted = [a(f) for a, f in zip(self.adapters, s_feats)]
        cls = {"student_cls": s_cls, "teacher_cls": t_cls} if self.kd_loss.uses_cls_tower else {}
        if self.kd_loss.uses_head:
            cls["head"] = HeadInputs(self.student.head, self.teacher.head, s_feats, t_feats, s_cls, t_cls)
        if self.kd_loss.uses_box_classifier:
            _, proposals, image_shapes = self.capture.single(BOX_POOL_MODULE)[:3]
            cls["box_classifier"] = BoxClassifierInputs(
                self.capture.single(BOX_PREDICTOR_MODULE)[0],
                self.teacher_box_logits(t_fpn, proposals, image_shapes),
            )
        self.capture.clear()
        kd = self.kd_loss(adapted, t_feats, boxes, strides, **cls)
        for name, value in kd.items():
            losses[f"kd/{name}"] = self.kd_scale * value
        return losses

    def close(self) -> None:
        self.capture.close()


def sample_keys(targets: Sequence[dict]) -> list[Key] | None:
    """``(image_id, flipped)`` of each training image (``data.transforms.hflip_where`` marks the
    flipped ones), or None when a target has no ``image_id``."""
    if not all("image_id" in t for t in targets):
        return None
    return [(int(t["image_id"]), bool(t.get("hflip", False))) for t in targets]


def _interleave(n: int, first: list[int], a: Tensor, second: list[int], b: Tensor) -> Tensor:
    """``n x ...``: rows ``first`` from ``a``, rows ``second`` from ``b``."""
    out = a.new_empty((n, *a.shape[1:]))
    out[first], out[second] = a, b
    return out


class KDWarmupHook(HookBase):
    """Scales every KD term linearly from 0 to 1 over the first ``warmup`` steps, and to 0 from
    step ``stop_at`` on (KD off for the tail of the schedule; None: to the end)."""

    def __init__(self, distiller: Distiller, warmup: int, stop_at: int | None = None):
        self.distiller, self.warmup, self.stop_at = distiller, warmup, stop_at

    def before_step(self, trainer: Trainer) -> None:
        if self.stop_at is not None and trainer.iter >= self.stop_at:
            self.distiller.kd_scale = 0.0
        else:
            self.distiller.kd_scale = min(1.0, (trainer.iter + 1) / self.warmup) if self.warmup > 0 else 1.0

    def after_train(self, trainer: Trainer, error: BaseException | None) -> None:
        self.distiller.close()


def kd_warmup_iters(cfg: MethodSpec, iterations: int) -> int:
    """The spec's value, else 500 steps or 10% of the run when that is shorter."""
    if cfg.kd_warmup_iters is not None:
        return cfg.kd_warmup_iters
    return min(DEFAULT_KD_WARMUP, iterations // 10)


def build_distiller(
    student: nn.Module,
    teacher: nn.Module,
    cfg: MethodSpec,
    student_arch: str,
    teacher_arch: str,
    iterations: int,
    class_map: ClassMapping | None = None,
) -> tuple[Distiller, list[HookBase]]:
    distiller = Distiller(student, teacher, cfg, student_arch, teacher_arch, class_map)
    return distiller, [
        KDWarmupHook(distiller, kd_warmup_iters(cfg, iterations), kd_stop_step(cfg, iterations))
    ]


def kd_stop_step(cfg: MethodSpec, iterations: int) -> int | None:
    """The first step trained without KD (``kd_stop_fraction`` of the run left), or None."""
    if cfg.kd_stop_fraction <= 0:
        return None
    return iterations - round(cfg.kd_stop_fraction * iterations)
