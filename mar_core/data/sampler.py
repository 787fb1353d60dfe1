"""Deterministic, resumable batches: the batch of iteration ``it`` depends only on (seed, it)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class IterationBatchSampler(Sampler[list[int]]):
    """Yield index batches for iterations ``start_iter .. end_iter - 1``.

    Epoch ``e = it // iters_per_epoch`` (``iters_per_epoch = max(1, n // batch_size)``) visits
    ``torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000003 + e))`` in
    consecutive chunks of ``batch_size`` (the tail of an epoch that does not fill a batch is
    skipped). With ``n < batch_size`` the permutation is repeated to fill the batch. Resuming
    at iteration k yields exactly the batches an uninterrupted run yields from k on.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, start_iter: int, end_iter: int):
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= start_iter <= end_iter:
            raise ValueError(f"need 0 <= start_iter <= end_iter, got {start_iter}, {end_iter}")
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.start_iter, self.end_iter = start_iter, end_iter
        self.iters_per_epoch = max(1, num_samples // batch_size)

    def epoch_permutation(self, epoch: int) -> torch.Tensor:
        """int64 ``n``: the visiting order of epoch ``epoch``."""
        g = torch.Generator().manual_seed(self.seed * 1000003 + epoch)
        return torch.randperm(self.num_samples, generator=g)

    def batch(self, it: int) -> list[int]:
        """The indices of iteration ``it`` (a pure function of seed and ``it``)."""
        return self._batch(it, self.epoch_permutation(it // self.iters_per_epoch))

    def _batch(self, it: int, perm: torch.Tensor) -> list[int]:
        if self.num_samples < self.batch_size:
            reps = -(-self.batch_size // self.num_samples)
            return perm.repeat(reps)[: self.batch_size].tolist()
        k = it % self.iters_per_epoch
        return perm[k * self.batch_size : (k + 1) * self.batch_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        epoch, perm = -1, None
        for it in range(self.start_iter, self.end_iter):
            if it // self.iters_per_epoch != epoch:
                epoch = it // self.iters_per_epoch
                perm = self.epoch_permutation(epoch)
            yield self._batch(it, perm)

    def __len__(self) -> int:
        return self.end_iter - self.start_iter
