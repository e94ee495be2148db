"""Batch indices are a pure function of (seed, step, rank) and follow DistributedSampler's sharding."""

import torch
from torch.utils.data import DistributedSampler

from deepgen.train.sampler import EpochSampler


def test_matches_distributed_sampler_per_epoch():
    n, world = 23, 2
    for rank in range(world):
        ours = EpochSampler(n, batch_size=4, seed=5, rank=rank, world_size=world)
        ref = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=5)
        stream = torch.cat([ours.batch(s) for s in range(9)])  # 36 indices = three epochs of 12
        for epoch in range(3):
            ref.set_epoch(epoch)
            assert stream[epoch * 12 : (epoch + 1) * 12].tolist() == list(ref)


def test_batches_are_stateless():
    a = EpochSampler(100, 32, seed=1)
    b = EpochSampler(100, 32, seed=1)
    seq = [a.batch(s) for s in range(10)]
    assert torch.equal(b.batch(7), seq[7])  # jumping straight to step 7 gives the same batch
    ranks = [EpochSampler(100, 10, seed=1, rank=r, world_size=2).batch(0) for r in range(2)]
    assert not set(ranks[0].tolist()) & set(ranks[1].tolist())


def test_several_batches_at_once_are_the_batches_in_order():
    s = EpochSampler(23, 4, seed=3, rank=1, world_size=2)  # crosses epochs (12 indices per rank and epoch)
    assert torch.equal(s.batches(2, 5), torch.cat([s.batch(k) for k in range(2, 7)]))


def test_a_fused_gather_equals_the_batches_one_by_one(binary_digits):
    from deepgen.train.batches import BatchSource

    src = BatchSource(binary_digits, 16, 0, 0, 1, torch.device("cpu"))
    x, y = src.peek_many(79, 4)  # 1,294 rows: batch 80 (rows 1,280-1,295) wraps into the second epoch
    one = [src.peek(79 + i) for i in range(4)]
    assert x.shape == (4, 16, 1, 8, 8) and y.shape == (4, 16)
    assert torch.equal(x, torch.stack([b[0] for b in one])) and torch.equal(y, torch.stack([b[1] for b in one]))
