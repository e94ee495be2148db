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
