"""Matching a teacher's classes to the dataset's by name.

A teacher may number its classes otherwise than the dataset: torchvision's COCO models have 91
labels with ``"N/A"`` gaps against a dataset's 80 contiguous ones, or the teacher knows a
superset. ``map_classes`` pairs them by name (trimmed, case-insensitive); labels count from 1
(0 is the background). ``ClassMapping.teacher_scores`` reorders a teacher's per-class scores
into the dataset's label order, for a loss that reads class scores; none of the registered
losses does today (MAR's relation term and CWD read the classification tower's feature
channels, not its class logits), so the distiller holds the mapping for such a loss and the job
reports what it matched and which dataset classes the teacher lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from mar_core.spec import PLACEHOLDER_CLASS_NAMES


def _key(name: str) -> str:
    return name.strip().lower()


@dataclass(frozen=True)
class ClassMapping:
    """``teacher_label[i]``: the teacher's label of dataset label ``i + 1``, or ``None`` when the
    teacher lacks that class (named in ``missing``); ``unused``: teacher classes the dataset
    lacks."""

    dataset_names: tuple[str, ...]
    teacher_label: tuple[int | None, ...]
    missing: tuple[str, ...]
    unused: tuple[str, ...]

    @property
    def identity(self) -> bool:
        """Same classes in the same order (labels unchanged)."""
        return self.teacher_label == tuple(range(1, len(self.dataset_names) + 1)) and not self.unused

    @property
    def matched(self) -> int:
        return sum(t is not None for t in self.teacher_label)

    def teacher_scores(self, scores: Tensor, fill: float = 0.0) -> Tensor:
        """``scores[..., K_t]`` (teacher labels, background at 0) -> ``[..., 1 + S]`` in the
        dataset's label order, background kept at 0; a class the teacher lacks gets ``fill``."""
        index = torch.tensor([0] + [t or 0 for t in self.teacher_label], device=scores.device)
        out = scores.index_select(-1, index)
        lacking = torch.tensor([False] + [t is None for t in self.teacher_label], device=scores.device)
        return out.masked_fill(lacking, fill)

    def describe(self) -> str:
        """One line for the job's log: what matched, what the teacher lacks, what it has more."""
        line = (
            f"teacher classes matched to the dataset's by name: {self.matched} of {len(self.dataset_names)}"
        )
        if self.missing:
            line += f"; the teacher lacks {', '.join(self.missing)}"
        if self.unused:
            line += f"; {len(self.unused)} teacher classes unused"
        return line


def map_classes(dataset_names: Sequence[str], teacher_names: Sequence[str]) -> ClassMapping:
    """Pair dataset labels ``1..S`` with teacher labels ``1..K-1`` by name; placeholders
    (``"N/A"``, ``"__background__"``) of the teacher's list never match."""
    by_name: dict[str, int] = {}
    for label, name in enumerate(teacher_names, start=1):
        if name not in PLACEHOLDER_CLASS_NAMES:
            by_name.setdefault(_key(name), label)
    labels = tuple(by_name.get(_key(n)) for n in dataset_names)
    wanted = {_key(n) for n in dataset_names}
    unused = tuple(n for n in teacher_names if n not in PLACEHOLDER_CLASS_NAMES and _key(n) not in wanted)
    missing = tuple(n for n, t in zip(dataset_names, labels) if t is None)
    return ClassMapping(tuple(dataset_names), labels, missing, unused)
