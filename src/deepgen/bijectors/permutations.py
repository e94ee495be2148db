"""Permutations of one dimension: fixed, reversed, and seeded random. Volume-preserving (log-det 0).

Coupling flows alternate which half of the features they transform; a permutation between couplings
lets every dimension be transformed (Dinh et al., NICE, 2015, arXiv:1410.8516; RealNVP, 2017,
arXiv:1605.08803). ``dim`` indexes the full batch tensor: 1 is the feature dimension of vectors
``(B, D)`` and the channel dimension of images ``(B, C, H, W)``; negative values count from the end.

>>> p = RandomPermutation(4, generator=torch.Generator().manual_seed(0))
>>> z, ld = p(torch.randn(2, 4))  # ld == 0
"""

from __future__ import annotations

import torch

from deepgen.bijectors.base import Bijector, zero_log_det


def _check_dim(dim: int) -> int:
    if dim == 0:
        raise ValueError("a permutation acts within examples: dim 0 is the batch dimension")
    return dim


class Permute(Bijector):
    """Fixed permutation ``z = x.index_select(dim, perm)`` (so ``z[:, i] = x[:, perm[i]]`` for dim 1).

    ``perm`` is stored as a buffer (it is in the state dict, so a checkpoint restores it exactly),
    and so is its inverse ``argsort(perm)``.

    >>> Permute([2, 0, 1])(torch.tensor([[10.0, 11.0, 12.0]]))[0]
    tensor([[12., 10., 11.]])
    """

    def __init__(self, perm, dim: int = 1):
        super().__init__()
        perm = torch.as_tensor(perm, dtype=torch.long)
        if perm.dim() != 1 or not torch.equal(perm.sort().values, torch.arange(len(perm))):
            raise ValueError(f"Permute: {perm.tolist()} is not a permutation of 0..{len(perm) - 1}")
        self.dim = _check_dim(dim)
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))

    def extra_repr(self) -> str:
        return f"size={len(self.perm)}, dim={self.dim}"

    def _check(self, x: torch.Tensor) -> None:
        if x.shape[self.dim] != len(self.perm):
            raise ValueError(f"Permute: dimension {self.dim} has size {x.shape[self.dim]}, expected {len(self.perm)}")

    def forward(self, x, context=None):
        self._check(x)
        return x.index_select(self.dim, self.perm), zero_log_det(x)

    def inverse(self, z, context=None):
        self._check(z)
        return z.index_select(self.dim, self.inverse_perm), zero_log_det(z)


class Reverse(Bijector):
    """Reverse the order along ``dim`` (RealNVP's alternation of coupling masks); works for any size."""

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = _check_dim(dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

    def forward(self, x, context=None):
        return x.flip(self.dim), zero_log_det(x)

    def inverse(self, z, context=None):
        return z.flip(self.dim), zero_log_det(z)


class RandomPermutation(Permute):
    """A random but fixed permutation of ``size`` entries along ``dim``, drawn from ``generator``.

    Pass a seeded ``torch.Generator`` (or an int seed) for a reproducible architecture; the draw is
    a buffer, so loading a checkpoint restores it whatever the seed.
    """

    def __init__(self, size: int, dim: int = 1, generator: torch.Generator | int | None = None):
        if isinstance(generator, int):
            generator = torch.Generator().manual_seed(generator)
        super().__init__(torch.randperm(size, generator=generator), dim)
