"""Deterministic batch indices: batch ``s`` is a pure function of (seed, step, rank).

Each epoch is a permutation drawn from ``torch.Generator().manual_seed(seed + epoch)``, padded and
sharded over ranks exactly like ``torch.utils.data.DistributedSampler(shuffle=True, drop_last=False)``.
A rank's batches are consecutive slices of its endless stream of epochs, so resuming at step ``s``
needs no sampler state: that is what makes kill-and-resume bit-identical.

Permutations are always drawn on the CPU (the same indices on every device); with ``device`` set,
each epoch's indices are copied there once, so batches slice device-resident indices and a GPU
run gathers its batch without a host-to-device copy per step.
"""

from __future__ import annotations

import math

import torch


class EpochSampler:
    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str | None = None,
    ):
        if n <= 0:
            raise ValueError("cannot sample batches from an empty dataset")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world = rank, world_size
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.per_rank = math.ceil(n / world_size)
        self._epoch, self._indices = -1, None

    @classmethod
    def for_run(
        cls, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, device=None
    ) -> EpochSampler:
        """The sampler a training run with ``seed`` uses.

        Epoch ``e`` is shuffled with ``seed' + e``; spreading ``seed'`` keeps runs with seeds ``s`` and
        ``s + 1`` from replaying each other's epochs one epoch apart.
        """
        return cls(n, batch_size, (seed * 1_000_003 + 12_345) % (2**31), rank, world_size, device)

    def _epoch_indices(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed + epoch)
            perm = torch.randperm(self.n, generator=g)
            total = self.per_rank * self.world
            if total > self.n:  # pad by wrapping, as DistributedSampler does
                perm = torch.cat([perm, perm[: total - self.n].repeat(math.ceil((total - self.n) / self.n))])[:total]
            self._epoch, self._indices = epoch, perm[self.rank : total : self.world].to(self.device)
        return self._indices

    def batch(self, step: int) -> torch.Tensor:
        """Indices (batch_size,) of the examples this rank uses at ``step``."""
        return self.span(step * self.batch_size, self.batch_size)

    def batches(self, step: int, n: int) -> torch.Tensor:
        """Indices (n * batch_size,) of the batches of steps ``step .. step + n - 1``, in order."""
        return self.span(step * self.batch_size, n * self.batch_size)

    def span(self, start: int, count: int) -> torch.Tensor:
        """Positions ``start .. start + count - 1`` of this rank's endless stream of epochs."""
        parts, need = [], count
        while need > 0:
            epoch, offset = divmod(start, self.per_rank)
            idx = self._epoch_indices(epoch)[offset : offset + need]
            parts.append(idx)
            need -= len(idx)
            start += len(idx)
        return parts[0] if len(parts) == 1 else torch.cat(parts)
