"""Elementwise bijectors: affine, rescaling, logit, sigmoid, tanh. Direction data -> latent.

Each acts on every entry of ``(B, *shape)`` independently, so its Jacobian is diagonal and the
log-determinant is the sum of the log-derivatives over the example, shape ``(B,)``.

>>> z, ld = Logit(0.05)(torch.rand(4, 1, 8, 8))  # image data in (0, 1) -> R
>>> x, _ = Logit(0.05).inverse(z)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.bijectors.base import Bijector, sum_except_batch


def _shape(shape: int | tuple[int, ...]) -> tuple[int, ...]:
    return (shape,) if isinstance(shape, int) else tuple(shape)


def _float(v, default_shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """``v`` as a floating tensor (keeping a given float dtype); zeros of ``default_shape`` for None."""
    if v is None:
        return torch.zeros(default_shape)
    t = torch.as_tensor(v)
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())


class Affine(Bijector):
    """Per-dimension affine map ``x = loc + exp(log_scale) * z``, i.e. ``z = (x - loc) * exp(-log_scale)``.

    Parameterised as the data's location and scale, so a flow made of one ``Affine`` over a standard
    normal base is the diagonal Gaussian N(loc, exp(log_scale)^2). ``shape`` is the parameters'
    shape and must broadcast against one example: ``(D,)`` per feature of vectors, ``(C, 1, 1)``
    per channel of images, ``(C, H, W)`` per pixel. The log-det ``-sum(log_scale)`` counts each
    broadcast entry once per example entry.

    Args:
        shape: parameter shape (an int means ``(D,)``).
        loc, log_scale: initial values (default 0: the identity).
        learnable: parameters (trained) or buffers (fixed, e.g. a known standardisation).

    >>> a = Affine(2, loc=torch.tensor([1.0, -2.0]), log_scale=torch.tensor([0.0, 0.7]))
    >>> z, ld = a(torch.randn(5, 2))  # ld == -0.7 for every example
    """

    def __init__(
        self,
        shape: int | tuple[int, ...],
        *,
        loc: torch.Tensor | None = None,
        log_scale: torch.Tensor | None = None,
        learnable: bool = True,
    ):
        super().__init__()
        shape = _shape(shape)
        loc, log_scale = _float(loc, shape), _float(log_scale, shape)
        if loc.shape != shape or log_scale.shape != shape:
            raise ValueError(f"Affine: loc and log_scale must have shape {shape}, got {loc.shape}, {log_scale.shape}")
        if learnable:
            self.loc = nn.Parameter(loc.clone())
            self.log_scale = nn.Parameter(log_scale.clone())
        else:
            self.register_buffer("loc", loc.clone())
            self.register_buffer("log_scale", log_scale.clone())

    def _log_det(self, x: torch.Tensor) -> torch.Tensor:
        # the parameters broadcast over the example, so each one counts once per entry it scales
        per_example = self.log_scale.expand(x.shape[1:]).sum()
        return per_example.expand(x.shape[0])

    def forward(self, x, context=None):
        return (x - self.loc) * torch.exp(-self.log_scale), -self._log_det(x)

    def inverse(self, z, context=None):
        return self.loc + torch.exp(self.log_scale) * z, self._log_det(z)


class ConditionalAffine(Bijector):
    """Label-conditional :class:`Affine`: ``x = loc[y] + exp(log_scale[y]) * z`` for labels ``y = context``.

    One (loc, log_scale) pair of shape ``shape`` per class, initialised to the identity. The
    reference conditional bijector: ``context`` is a ``(B,)`` integer tensor of labels in
    ``0..num_classes-1`` (a conditional ``Flow`` passes its labels through ``embed_context``).
    Over a standard normal base it is a class-conditional diagonal Gaussian.

    >>> b = ConditionalAffine(3, 2)
    >>> z, ld = b(torch.randn(4, 2), torch.tensor([0, 1, 2, 0]))
    """

    def __init__(self, num_classes: int, shape: int | tuple[int, ...]):
        super().__init__()
        shape = _shape(shape)
        self.loc = nn.Parameter(torch.zeros(num_classes, *shape))
        self.log_scale = nn.Parameter(torch.zeros(num_classes, *shape))

    def _params(self, x: torch.Tensor, context: torch.Tensor | None):
        if context is None:
            raise ValueError("ConditionalAffine needs labels: pass context=y, a (B,) integer tensor")
        loc, log_scale = self.loc[context], self.log_scale[context]
        return loc, log_scale, sum_except_batch(log_scale.expand_as(x))

    def forward(self, x, context=None):
        loc, log_scale, ld = self._params(x, context)
        return (x - loc) * torch.exp(-log_scale), -ld

    def inverse(self, z, context=None):
        loc, log_scale, ld = self._params(z, context)
        return loc + torch.exp(log_scale) * z, ld


class Rescale(Bijector):
    """Fixed map ``z = scale * x + shift`` (e.g. ``Rescale(2, -1)`` takes [0, 1] to [-1, 1]).

    ``scale`` and ``shift`` are floats or tensors broadcastable to one example; ``scale`` must be
    non-zero. Log-det ``sum log|scale|`` over the example, so bits/dim include the rescaling.
    """

    def __init__(self, scale: float | torch.Tensor, shift: float | torch.Tensor = 0.0):
        super().__init__()
        scale = _float(scale)
        if (scale == 0).any() or not torch.isfinite(scale).all():
            raise ValueError(f"Rescale: scale must be finite and non-zero, got {scale}")
        self.register_buffer("scale", scale)
        self.register_buffer("shift", _float(shift))

    def _log_det(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(self.scale.abs()).expand(x.shape[1:]).sum().expand(x.shape[0]).to(x.dtype)

    def forward(self, x, context=None):
        return x * self.scale + self.shift, self._log_det(x)

    def inverse(self, z, context=None):
        return (z - self.shift) / self.scale, -self._log_det(z)


class Logit(Bijector):
    """RealNVP's logit: ``z = logit(alpha + (1 - 2 alpha) x)`` for data ``x`` in (0, 1).

    Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP" (2017, arXiv:1605.08803),
    section 4.1: image data in (0, 1) are mapped to the real line before the flow, and the
    log-determinant ``sum[log(1 - 2 alpha) - log s - log(1 - s)]``, ``s = alpha + (1 - 2 alpha) x``,
    is part of the likelihood (bits/dim include it). ``alpha`` keeps the logit away from the
    infinities at 0 and 1; with ``alpha > 0`` the latent range is the bounded interval
    ``(logit(alpha), logit(1 - alpha))``, so a flow's density over (0, 1) integrates to slightly less
    than 1 (its mass beyond the interval ends: reported likelihoods err low, never high).

    >>> z, ld = Logit(0.05)(torch.full((1, 3), 0.5))  # z == 0
    """

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if not 0 <= alpha < 0.5:
            raise ValueError(f"Logit: alpha must lie in [0, 0.5), got {alpha}")
        self.alpha = float(alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"

    def forward(self, x, context=None):
        s = self.alpha + (1 - 2 * self.alpha) * x
        log_s, log_1ms = torch.log(s), torch.log1p(-s)
        return log_s - log_1ms, sum_except_batch(math.log(1 - 2 * self.alpha) - log_s - log_1ms)

    def inverse(self, z, context=None):
        # log s and log(1 - s) via logsigmoid stay finite for large |z|
        log_s, log_1ms = F.logsigmoid(z), F.logsigmoid(-z)
        x = (torch.sigmoid(z) - self.alpha) / (1 - 2 * self.alpha)
        return x, sum_except_batch(log_s + log_1ms - math.log(1 - 2 * self.alpha))


class Sigmoid(Bijector):
    """``z = sigmoid(x)``: R -> (0, 1), log-det ``sum log sigmoid(x) + log sigmoid(-x)``.

    A data -> latent sigmoid suits a base distribution on the unit cube; ``Inverse(Sigmoid())`` is
    the plain logit (``Logit(0)``).
    """

    def forward(self, x, context=None):
        return torch.sigmoid(x), sum_except_batch(F.logsigmoid(x) + F.logsigmoid(-x))

    def inverse(self, z, context=None):
        log_z, log_1mz = torch.log(z), torch.log1p(-z)
        return log_z - log_1mz, -sum_except_batch(log_z + log_1mz)


class Tanh(Bijector):
    """``z = tanh(x)``: R -> (-1, 1), log-det ``sum log(1 - tanh(x)^2)``.

    The log-derivative is computed as ``2 (log 2 - x - softplus(-2x))``, finite for large |x|.
    ``Inverse(Tanh())`` maps data in (-1, 1) to R.
    """

    def forward(self, x, context=None):
        return torch.tanh(x), sum_except_batch(2 * (math.log(2) - x - F.softplus(-2 * x)))

    def inverse(self, z, context=None):
        return torch.atanh(z), -sum_except_batch(torch.log1p(-z * z))
