"""Teacher outputs kept per training sample (``distill.teacher_cache``), so that from its second
sight of an image the distiller does not run the teacher again.

Valid only when the teacher's input is a deterministic function of (image, flip): one input size
(no multi-scale ``min_size`` list) and no other random augmentation; the caller checks that
(``mar_core.single_run.teacher_cache_refusal``). A sample's key is ``(image_id, flipped)``; its entry holds the teacher's
whole FPN output and classification-tower outputs for that image, each ``C x H x W`` (the
sample's slice of the batched forward), and the padded input size it was computed at: an entry
is used only for a batch padded to the same size, so the teacher saw the same pixels.

Entries live in memory up to ``memory_bytes``, then one file each under ``folder`` up to
``disk_bytes``; past both, new samples are not kept (the teacher runs for them). Stored in
float32 (the same numbers as the live teacher) or float16 (half the room).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

log = logging.getLogger(__name__)

Key = tuple[int, bool]  # (image_id, horizontally flipped)
STORE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
TEACHER_CACHE_DIR = "teacher_cache"  # in the job's work folder: the entries past the memory budget


@dataclass
class Entry:
    """One sample's teacher outputs (``C x H x W`` each) at padded input size ``input_hw``."""

    input_hw: tuple[int, int]
    fpn: dict[str, Tensor]
    towers: dict[int, Tensor]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in [*self.fpn.values(), *self.towers.values()])


@dataclass
class CacheStats:
    hits: int = 0  # samples served from the cache
    misses: int = 0  # samples the teacher ran for
    memory_bytes: int = 0
    disk_bytes: int = 0
    full: int = 0  # samples not kept: both budgets spent
    entries: dict[str, int] = field(default_factory=lambda: {"memory": 0, "disk": 0})

    def to_dict(self) -> dict:
        seen = self.hits + self.misses
        return {
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": round(self.hits / seen, 4) if seen else None,
            "memory_mib": round(self.memory_bytes / 2**20, 1),
            "disk_mib": round(self.disk_bytes / 2**20, 1),
            "entries": dict(self.entries),
            "not_kept": self.full,
        }


class TeacherCache:
    """``lookup(keys, input_hw)`` -> the cached entries or None per key; ``store(keys,
    input_hw, fpn, towers)`` keeps each sample's slice of a batched teacher output."""

    def __init__(self, memory_bytes: int, disk_bytes: int, folder: Path | None, dtype: str = "fp32"):
        self.memory_budget, self.disk_budget = memory_bytes, disk_bytes if folder is not None else 0
        self.folder = folder
        self.dtype = STORE_DTYPES[dtype]
        self.memory: dict[Key, Entry] = {}
        self.on_disk: dict[Key, Path] = {}
        self.stats = CacheStats()
        if folder is not None:  # a fresh cache: a file left by an earlier process is not trusted
            shutil.rmtree(folder, ignore_errors=True)

    def lookup(self, keys: Sequence[Key], input_hw: tuple[int, int]) -> list[Entry | None]:
        out: list[Entry | None] = []
        for key in keys:
            entry = self.memory.get(key)
            if entry is None and key in self.on_disk:
                entry = Entry(**torch.load(self.on_disk[key], weights_only=True))
                entry.input_hw = tuple(entry.input_hw)
            out.append(entry if entry is not None and entry.input_hw == input_hw else None)
        return out

    def store(
        self,
        keys: Sequence[Key],
        input_hw: tuple[int, int],
        fpn: dict[str, Tensor],
        towers: dict[int, Tensor],
    ) -> None:
        """Keep sample ``i`` of ``fpn`` / ``towers`` (``B x C x H x W``, B = len(keys))."""
        for i, key in enumerate(keys):
            entry = Entry(
                input_hw,
                {n: t[i].detach().to("cpu", self.dtype, copy=True) for n, t in fpn.items()},
                {j: t[i].detach().to("cpu", self.dtype, copy=True) for j, t in towers.items()},
            )
            size = entry.nbytes()
            if self.stats.memory_bytes + size <= self.memory_budget:
                self.memory[key] = entry
                self.stats.memory_bytes += size
                self.stats.entries["memory"] += 1
            elif self.folder is not None and self.stats.disk_bytes + size <= self.disk_budget:
                self.folder.mkdir(parents=True, exist_ok=True)
                path = self.folder / f"{key[0]}-{int(key[1])}.pt"
                torch.save({"input_hw": list(input_hw), "fpn": entry.fpn, "towers": entry.towers}, path)
                self.on_disk[key] = path
                self.stats.disk_bytes += size
                self.stats.entries["disk"] += 1
            else:
                self.stats.full += 1

    def __contains__(self, key: Key) -> bool:
        return key in self.memory or key in self.on_disk


def stack_entries(
    entries: Sequence[Entry], device: torch.device
) -> tuple[dict[str, Tensor], dict[int, Tensor]]:
    """The batch (``B x C x H x W`` float32 on ``device``) of cached entries."""
    fpn = {n: torch.stack([e.fpn[n] for e in entries]).to(device, torch.float32) for n in entries[0].fpn}
    towers = {
        j: torch.stack([e.towers[j] for e in entries]).to(device, torch.float32) for j in entries[0].towers
    }
    return fpn, towers
