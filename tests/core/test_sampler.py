"""Resumable, deterministic batches."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from mar_core.data import IterationBatchSampler, build_train_loader


def _batches(n, bs, seed, start, end):
    return list(IterationBatchSampler(n, bs, seed, start, end))


@pytest.mark.parametrize("n,bs", [(23, 4), (16, 4), (5, 8), (7, 7)])
def test_resume_equivalence(n, bs):
    full = _batches(n, bs, 3, 0, 40)
    for k in (0, 1, 5, 6, 17, 39, 40):
        assert _batches(n, bs, 3, k, 40) == full[k:]
    assert _batches(n, bs, 3, 0, 40) == full  # pure function of (seed, it)
    assert all(len(b) == bs for b in full)


def test_batch_matches_iteration():
    s = IterationBatchSampler(23, 4, 3, 0, 30)
    assert [s.batch(it) for it in range(30)] == list(s)
    assert len(s) == 30 and len(IterationBatchSampler(23, 4, 3, 10, 30)) == 20


def test_epoch_coverage():
    n, bs = 22, 4  # 5 iterations per epoch, 2 samples skipped each epoch
    s = IterationBatchSampler(n, bs, 0, 0, 10)
    assert s.iters_per_epoch == 5
    batches = list(s)
    for e in range(2):
        seen = [i for b in batches[e * 5 : (e + 1) * 5] for i in b]
        assert len(seen) == len(set(seen)) == 20 and set(seen) <= set(range(n))
    exact = [i for b in _batches(24, 4, 0, 0, 6) for i in b]
    assert sorted(exact) == list(range(24))


def test_documented_permutation():
    seed, n, bs = 5, 10, 2
    s = IterationBatchSampler(n, bs, seed, 0, 10)
    perm1 = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000003 + 1)).tolist()
    assert [i for b in list(s)[5:10] for i in b] == perm1


def test_fewer_samples_than_batch():
    batches = _batches(3, 8, 1, 0, 4)
    for b in batches:
        counts = Counter(b)
        assert len(b) == 8 and set(counts) == {0, 1, 2} and max(counts.values()) - min(counts.values()) <= 1
    assert batches[0] != batches[1] or batches[1] != batches[2]  # a new permutation each iteration


def test_seeds_differ_and_bad_args():
    assert _batches(50, 5, 0, 0, 3) != _batches(50, 5, 1, 0, 3)
    with pytest.raises(ValueError):
        IterationBatchSampler(0, 2, 0, 0, 1)
    with pytest.raises(ValueError):
        IterationBatchSampler(5, 2, 0, 3, 2)


class _Ids(torch.utils.data.Dataset):
    def __len__(self):
        return 13

    def __getitem__(self, i):
        return torch.zeros(3, 2, 2), {"image_id": i}


def test_train_loader_resumes():
    full = [[t["image_id"] for t in tg] for _, tg in build_train_loader(_Ids(), 3, 9, 0, 12)]
    tail = [[t["image_id"] for t in tg] for _, tg in build_train_loader(_Ids(), 3, 9, 7, 12)]
    assert len(full) == 12 and tail == full[7:]


def test_rank_shards_partition_the_global_batch():
    def ids(rank):
        loader = build_train_loader(_Ids(), 4, 9, 2, 8, rank=rank, world_size=2)
        return [[t["image_id"] for t in tg] for _, tg in loader]

    full = [[t["image_id"] for t in tg] for _, tg in build_train_loader(_Ids(), 4, 9, 2, 8)]
    r0, r1 = ids(0), ids(1)
    assert all(len(a) == len(b) == 2 for a, b in zip(r0, r1))
    assert [sorted(a + b) for a, b in zip(r0, r1)] == [sorted(f) for f in full]
