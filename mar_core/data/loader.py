"""DataLoaders for detection: list-of-images batches, resumable training order."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from mar_core.data.sampler import IterationBatchSampler

Sample = tuple[torch.Tensor, dict[str, Any]]


def collate_detection(batch: list[Sample]) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    """``[(image 3xHxW, target), ...] -> ([images], [targets])``; sizes may differ (the
    detector's own transform resizes and pads)."""
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)


def build_train_loader(dataset: Dataset, batch_size: int, seed: int, start_iter: int, end_iter: int,
                       num_workers: int = 0) -> DataLoader:
    """One batch per iteration ``start_iter .. end_iter - 1`` in the order of
    ``IterationBatchSampler`` (resume by passing the next iteration as ``start_iter``)."""
    sampler = IterationBatchSampler(len(dataset), batch_size, seed, start_iter, end_iter)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_detection,
                      num_workers=num_workers, persistent_workers=False)


def build_eval_loader(dataset: Dataset, batch_size: int, num_workers: int = 0) -> DataLoader:
    """Every image once, in dataset order."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, drop_last=False,
                      collate_fn=collate_detection, num_workers=num_workers)
