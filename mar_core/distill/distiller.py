"""The distillation wrapper: student + adapters + KD losses, reading a frozen teacher.

``Distiller(images, targets)`` returns the student's detection losses under their own names
plus weighted KD terms named ``kd/<term>`` (the trainer sums them); the terms come from the loss
module registered for the spec's method (``kd_loss.build_kd_loss``). The teacher sees the
student's transformed, padded batch (``ImageList.tensors``): no image is preprocessed twice,
and only its backbone (FPN) and classification tower run: no post-processing, no NMS.
The teacher is not a registered sub-module: it is absent from ``state_dict()`` and from the
optimizer, stays in eval mode and never gets a gradient.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from mar_core.distill.capture import FeatureCapture
from mar_core.distill.feature_loss import resize_to
from mar_core.distill.kd_loss import build_kd_loss
from mar_core.engine.trainer import HookBase, Trainer
from mar_core.methods import MethodSpec
from mar_core.models.registry import CLS_TOWER_MODULES, FEATURE_MODULE
from mar_core.names import is_two_stage

log = logging.getLogger(__name__)

TRANSFORM_MODULE = "transform"
DEFAULT_KD_WARMUP = 500


def _adapter(c_in: int, c_out: int, mode: str) -> nn.Module:
    if c_in == c_out and mode == "auto":
        return nn.Identity()
    return nn.Conv2d(c_in, c_out, kernel_size=1)


class Distiller(nn.Module):
    """Args: student/teacher detectors (same class set), the distill spec (any method's) and both archs."""

    def __init__(
        self, student: nn.Module, teacher: nn.Module, cfg: MethodSpec, student_arch: str, teacher_arch: str
    ):
        super().__init__()
        self.student = student
        object.__setattr__(self, "teacher", teacher)  # not registered: no state, no grad
        self.cfg = cfg.with_weight_defaults(is_two_stage(student_arch))  # unset weights: per detector family
        self.kd_scale = 1.0
        self.student_tower = CLS_TOWER_MODULES[student_arch]
        object.__setattr__(
            self, "teacher_tower", dict(teacher.named_modules())[CLS_TOWER_MODULES[teacher_arch]]
        )
        self.capture = FeatureCapture(student, [TRANSFORM_MODULE, FEATURE_MODULE, self.student_tower])
        c_s, c_t = student.backbone.out_channels, teacher.backbone.out_channels
        self.num_levels = min(len(student.mar_strides), len(teacher.mar_strides))
        if len(student.mar_strides) != len(teacher.mar_strides):
            log.warning(
                "student has %d FPN levels, teacher %d: distilling the first %d",
                len(student.mar_strides),
                len(teacher.mar_strides),
                self.num_levels,
            )
        self.adapters = nn.ModuleList(_adapter(c_s, c_t, cfg.adapter) for _ in range(self.num_levels))
        self.kd_loss = build_kd_loss(self.cfg, c_t, self.num_levels, is_two_stage(student_arch))
        teacher.eval().requires_grad_(False)

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

    @torch.no_grad()
    def teacher_features(self, batch: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """FPN outputs and classification-tower outputs of the teacher, one per level."""
        feats = list(self.teacher.backbone(batch).values())
        return feats, [self.teacher_tower(f) for f in feats]

    def forward(self, images: list[Tensor], targets: list[dict]) -> dict[str, Tensor]:
        self.capture.clear()
        losses = self.student(images, targets)
        image_list, targets_t = self.capture.single(TRANSFORM_MODULE)
        s_feats = list(self.capture.single(FEATURE_MODULE).values())[: self.num_levels]
        s_cls = self.capture.outputs[self.student_tower][: self.num_levels]
        t_feats, t_cls = self.teacher_features(image_list.tensors)
        t_feats, t_cls = t_feats[: self.num_levels], t_cls[: self.num_levels]
        t_feats = [resize_to(t, s.shape[-2:]) for s, t in zip(s_feats, t_feats)]
        t_cls = [resize_to(t, s.shape[-2:]) for s, t in zip(s_cls, t_cls)]
        padded_h, padded_w = image_list.tensors.shape[-2:]
        strides = [(padded_h / f.shape[-2], padded_w / f.shape[-1]) for f in s_feats]
        boxes = [t["boxes"] for t in targets_t]
        adapted = [a(f) for a, f in zip(self.adapters, s_feats)]
        self.capture.clear()
        cls = {"student_cls": s_cls, "teacher_cls": t_cls} if self.kd_loss.uses_cls_tower else {}
        kd = self.kd_loss(adapted, t_feats, boxes, strides, **cls)
        for name, value in kd.items():
            losses[f"kd/{name}"] = self.kd_scale * value
        return losses

    def close(self) -> None:
        self.capture.close()


class KDWarmupHook(HookBase):
    """Scales every KD term linearly from 0 to 1 over the first ``warmup`` steps."""

    def __init__(self, distiller: Distiller, warmup: int):
        self.distiller, self.warmup = distiller, warmup

    def before_step(self, trainer: Trainer) -> None:
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
) -> tuple[Distiller, list[HookBase]]:
    distiller = Distiller(student, teacher, cfg, student_arch, teacher_arch)
    return distiller, [KDWarmupHook(distiller, kd_warmup_iters(cfg, iterations))]
