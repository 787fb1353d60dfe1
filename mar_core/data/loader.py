"""DataLoaders for detection: list-of-images batches, resumable training order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mar_core.data.sampler import IterationBatchSampler

Sample = tuple[torch.Tensor, dict[str, Any]]


def collate_detection(batch: list[Sample]) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    """``[(image 3xHxW, target), ...] -> ([images], [targets])``; sizes may differ (the
    detector's own transform resizes and pads)."""
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)


class RankShard(Sampler[list[int]]):
    """This rank's share ``batch[rank::world_size]`` of every global batch of ``batches``."""

    def __init__(self, batches: Sampler[list[int]], rank: int, world_size: int):
        self.batches, self.rank, self.world_size = batches, rank, world_size

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            yield batch[self.rank :: self.world_size]

    def __len__(self) -> int:
        return len(self.batches)


def build_train_loader(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    start_iter: int,
    end_iter: int,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """One batch per iteration ``start_iter .. end_iter - 1`` in the order of
    ``IterationBatchSampler`` (resume by passing the next iteration as ``start_iter``).
    With ``world_size > 1``, ``batch_size`` is the global batch and this loader yields rank
    ``rank``'s share of it (``RankShard``)."""
    sampler: Sampler[list[int]] = IterationBatchSampler(len(dataset), batch_size, seed, start_iter, end_iter)
    if world_size > 1:
        sampler = RankShard(sampler, rank, world_size)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_detection,
        num_workers=num_workers,
        persistent_workers=False,
    )


def build_eval_loader(dataset: Dataset, batch_size: int, num_workers: int = 0) -> DataLoader:
    """Every image once, in dataset order."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        drop_last=False,
        collate_fn=collate_detection,
        num_workers=num_workers,
    )
