"""The student's neck and head started from the teacher's weights where the shapes match (FGD's
and MGD's "inherit" strategy, ``distill.init_from_teacher``); the backbone body stays the
student's own (its depth differs from the teacher's)."""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

# What a detector's "neck and head" are, by the torchvision module names
NECK_AND_HEAD = {False: ("backbone.fpn.", "head."), True: ("backbone.fpn.", "rpn.", "roi_heads.")}


@torch.no_grad()
def inherit_neck_and_head(student: nn.Module, teacher: nn.Module, two_stage: bool) -> tuple[int, int]:
    """Copy the teacher's neck and head tensors into the student's where name and shape match;
    returns (tensors copied, tensors left: no match). Both detectors of the same family."""
    prefixes = NECK_AND_HEAD[two_stage]
    teacher_state = teacher.state_dict()
    copied = left = 0
    for name, tensor in student.state_dict().items():
        if not name.startswith(prefixes):
            continue
        source = teacher_state.get(name)
        if source is not None and source.shape == tensor.shape:
            tensor.copy_(source)
            copied += 1
        else:
            left += 1
    log.info(
        "student neck and head from the teacher: %d tensors copied, %d left (shapes differ)", copied, left
    )
    return copied, left
