"""Normalisation layers of flows: :class:`ActNorm` (Glow) and :class:`BatchNormFlow` (RealNVP, MAF).

Both are per-feature affine maps, direction data -> latent, that normalise their input. ``shape`` is
the parameters' shape, aligned with the dimensions after the batch dimension and broadcast over the
rest: an int ``D`` (or ``C``) means one parameter per feature of vectors ``(B, D)`` or per channel of
images ``(B, C, H, W)``; ``(C, H, W)`` means one per pixel. Statistics are taken over the batch and
every broadcast dimension, and each log-determinant counts every entry a parameter scales (per channel:
``H * W`` times).

>>> an = ActNorm(2)
>>> z, ld = an(3 * torch.randn(64, 2, 4, 4) + 1)  # the first training batch initialises it
>>> bool(an.initialized), abs(z.mean().item()) < 1e-5
(True, True)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepgen.bijectors.base import Bijector


def _shape(shape: int | tuple[int, ...]) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)


class _PerFeature:
    """Broadcasting of parameters of shape ``shape`` against a batch (B, *example) (a mixin)."""

    shape: tuple[int, ...]

    def _check(self, x: torch.Tensor) -> None:
        name = type(self).__name__
        ex = tuple(x.shape[1:])
        if len(ex) < len(self.shape) or any(s not in (1, e) for s, e in zip(self.shape, ex)):
            raise ValueError(f"{name}: parameters of shape {self.shape} do not fit examples of shape {ex}")

    def _view(self, p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``p`` (shape) as (1, *shape, 1, ...), broadcastable against ``x``."""
        return p.reshape(1, *self.shape, *([1] * (x.dim() - 1 - len(self.shape))))

    def _reduce_dims(self, x: torch.Tensor) -> list[int]:
        """The batch dimension and every dimension the parameters are broadcast over."""
        return [0] + [d for d in range(1, x.dim()) if d > len(self.shape) or self.shape[d - 1] == 1]

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Mean and biased variance over the reduced dimensions (in ``shape``) and their count."""
        dims = self._reduce_dims(x)
        n = math.prod(x.shape[d] for d in dims)
        mean = x.mean(dims, keepdim=True)
        var = ((x - mean) ** 2).mean(dims, keepdim=True)
        return mean.reshape(self.shape), var.reshape(self.shape), n

    def _count(self, x: torch.Tensor) -> int:
        """How many entries of one example each parameter scales."""
        return x[0].numel() // math.prod(self.shape)


class ActNorm(_PerFeature, Bijector):
    """Activation normalisation with data-dependent initialisation: ``z = (x - loc) * exp(-log_scale)``.

    Kingma & Dhariwal, "Glow" (2018, arXiv:1807.03039), section 3.1. Glow writes ``z = s * x + b``;
    here it is the equivalent ``s = exp(-log_scale)``, ``b = -loc * s`` (as :class:`~deepgen.bijectors.
    elementwise.Affine`), so ``log|det dz/dx| = -count * sum(log_scale)`` per example, ``count`` the
    entries each parameter scales (``H * W`` for per-channel parameters of images). Parameters of shape
    ``shape`` (see the module docstring): ``ActNorm(C)`` is per channel of (B, C, H, W) images or per
    feature of (B, C) vectors.

    Initialisation: the first ``forward`` in training mode on an uninitialised layer calls
    :meth:`initialize` on its batch, which sets ``loc`` to the batch mean and ``log_scale`` to
    ``0.5 log(var + eps)`` (biased variance, over the batch and broadcast dimensions), so that batch
    comes out with zero mean and unit variance per channel/feature (``eps`` guards a constant one).
    The ``initialized`` buffer is persistent: loading a checkpoint marks the layer initialised and it
    is not redone. In eval mode an uninitialised layer is the identity. After initialisation it is a
    plain affine bijection with learnable parameters; ``inverse`` is ``x = loc + exp(log_scale) z``.

    >>> an = ActNorm(3)
    >>> z, ld = an(torch.randn(100, 3) * torch.tensor([1.0, 2.0, 5.0]))
    >>> z.detach().std(0, unbiased=False).round(decimals=3)
    tensor([1., 1., 1.])
    """

    def __init__(self, shape: int | tuple[int, ...], *, eps: float = 1e-6):
        super().__init__()
        self.shape = _shape(shape)
        self.eps = float(eps)
        self.loc = nn.Parameter(torch.zeros(self.shape))
        self.log_scale = nn.Parameter(torch.zeros(self.shape))
        self.register_buffer("initialized", torch.tensor(False))
        # the buffer's value on the host: reading the buffer every forward would wait for the GPU
        self._initialized = False

    def extra_repr(self) -> str:
        return f"shape={self.shape}, eps={self.eps}"

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._initialized = bool(self.initialized)

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Set ``loc``, ``log_scale`` so that ``forward(x)`` has zero mean, unit variance; mark initialised."""
        self._check(x)
        mean, var, _ = self._stats(x.detach())
        self.loc.copy_(mean)
        self.log_scale.copy_(0.5 * torch.log(var + self.eps))
        self.initialized.fill_(True)
        self._initialized = True

    def _log_det(self, x: torch.Tensor) -> torch.Tensor:
        return (self._count(x) * self.log_scale.sum()).expand(x.shape[0])

    def forward(self, x, context=None):
        self._check(x)
        if self.training and not self._initialized:
            self.initialize(x)
        z = (x - self._view(self.loc, x)) * torch.exp(-self._view(self.log_scale, x))
        return z, -self._log_det(x)

    def inverse(self, z, context=None):
        self._check(z)
        return self._view(self.loc, z) + torch.exp(self._view(self.log_scale, z)) * z, self._log_det(z)


class BatchNormFlow(_PerFeature, Bijector):
    """Batch normalisation as a bijector: ``z = exp(log_gamma) * (x - mean) / sqrt(var + eps) + beta``.

    Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP" (2017, arXiv:1605.08803),
    section 3.7; Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow" (2017,
    arXiv:1705.07057), appendix B. ``log|det dz/dx| = count * sum(log_gamma - 0.5 log(var + eps))``
    per example (``count``: entries per parameter, ``H * W`` per channel of images). Parameters of
    shape ``shape`` (see the module docstring): ``BatchNormFlow(C)`` is per channel of (B, C, H, W) or
    per feature of (B, C).

    * Training mode: ``mean``/``var`` are the batch's mean and biased variance (over the batch and the
      broadcast dimensions). As in the papers, the output and log-det are those of this
      batch-dependent map (gradients flow through the statistics), so an example's log-det depends on
      the rest of its batch. The running averages ``running_mean``/``running_var`` (of the batch mean
      and unbiased variance) are updated as ``r <- (1 - momentum) r + momentum * batch``.
    * Eval mode: ``mean``/``var`` are the running averages: a fixed per-feature affine bijection.
    * ``inverse`` always uses the running averages, in either mode (inverting a batch-statistics map
      is not a per-example operation): it inverts the eval-mode forward.

    >>> bn = BatchNormFlow(2)
    >>> z, ld = bn(torch.randn(32, 2) * 3)  # batch statistics; updates the running averages
    >>> bn = bn.eval()
    >>> x = torch.randn(4, 2)
    >>> torch.allclose(bn.inverse(bn(x)[0])[0], x, atol=1e-6)
    True
    """

    def __init__(self, shape: int | tuple[int, ...], *, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        if not 0 <= momentum <= 1:
            raise ValueError(f"BatchNormFlow: momentum must lie in [0, 1], got {momentum}")
        self.shape = _shape(shape)
        self.momentum, self.eps = float(momentum), float(eps)
        self.log_gamma = nn.Parameter(torch.zeros(self.shape))
        self.beta = nn.Parameter(torch.zeros(self.shape))
        self.register_buffer("running_mean", torch.zeros(self.shape))
        self.register_buffer("running_var", torch.ones(self.shape))

    def extra_repr(self) -> str:
        return f"shape={self.shape}, momentum={self.momentum}, eps={self.eps}"

    def _log_det(self, x: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        return (self._count(x) * (self.log_gamma - 0.5 * torch.log(var + self.eps)).sum()).expand(x.shape[0])

    def forward(self, x, context=None):
        self._check(x)
        if self.training:
            mean, var, n = self._stats(x)
            with torch.no_grad():
                unbiased = var * (n / (n - 1)) if n > 1 else var
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(unbiased.detach(), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - self._view(mean, x)) * torch.rsqrt(self._view(var, x) + self.eps)
        z = torch.exp(self._view(self.log_gamma, x)) * x_hat + self._view(self.beta, x)
        return z, self._log_det(x, var)

    def inverse(self, z, context=None):
        self._check(z)
        mean, var = self.running_mean, self.running_var
        x_hat = (z - self._view(self.beta, z)) * torch.exp(-self._view(self.log_gamma, z))
        x = x_hat * torch.sqrt(self._view(var, z) + self.eps) + self._view(mean, z)
        return x, -self._log_det(z, var)
