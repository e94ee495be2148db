"""Base distributions of flows: the density a bijector's latents are scored under and drawn from.

A base distribution is an ``nn.Module`` over examples of a fixed ``shape`` with
``log_prob(z) -> (B,)`` (nats, summed over the example) and
``sample(n, generator=None, temperature=1.0) -> (n, *shape)``. It holds no parameters by default,
but follows the model's device and dtype (``model.to(...)``, ``model.double()``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepgen.bijectors.base import sum_except_batch

LOG_2PI = math.log(2 * math.pi)


class StandardNormal(nn.Module):
    """N(0, I) over examples of shape ``shape``: ``log_prob(z) = -0.5 sum(z^2) - 0.5 D log(2 pi)``.

    ``sample(n, temperature=T)`` draws ``T * eps`` with ``eps ~ N(0, I)``: the standard deviation is
    scaled by ``T`` (Kingma & Dhariwal, Glow, 2018, arXiv:1807.03039); ``T = 0`` returns zeros, the
    mode.

    >>> base = StandardNormal((2,))
    >>> base.log_prob(torch.zeros(3, 2))  # -log(2 pi) each
    tensor([-1.8379, -1.8379, -1.8379])
    """

    def __init__(self, shape: int | tuple[int, ...]):
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        # a non-persistent scalar that moves with .to()/.double(): it gives samples their device and dtype
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """(B,) log-density of ``z`` (B, *shape), in nats."""
        if tuple(z.shape[1:]) != self.shape:
            raise ValueError(f"StandardNormal: expected latents of shape {self.shape}, got {tuple(z.shape[1:])}")
        return sum_except_batch(-0.5 * z * z) - 0.5 * math.prod(self.shape) * LOG_2PI

    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """(n, *shape) draws with standard deviation ``temperature``, from ``generator``."""
        a = self._anchor
        eps = torch.randn((n, *self.shape), generator=generator, device=a.device, dtype=a.dtype)
        return eps * temperature
