"""The bijector contract: invertible maps with log-determinants, direction data -> latent.

Every invertible layer in deepgen is a :class:`Bijector`, an ``nn.Module`` with

* ``forward(x, context=None) -> (z, log|det dz/dx|)``: **data -> latent** (density evaluation),
* ``inverse(z, context=None) -> (x, log|det dx/dz|)``: **latent -> data** (sampling).

``x`` and ``z`` are batches ``(B, *shape)`` -- vectors ``(B, D)`` or images ``(B, C, H, W)`` -- and
each log-determinant has shape ``(B,)`` in the input's dtype, summed over every non-batch dimension.
A bijector may change the shape of an example (a squeeze) but not its number of entries.
``context`` carries what a conditional flow conditions on (labels, embeddings); bijectors that do
not use it ignore it, and :class:`Compose` hands it to every member.

With a base density p_Z, the change of variables gives ``log p_X(x) = log p_Z(f(x)) + log|det df/dx|``
for ``(z, log_det) = f.forward(x)``; sampling draws ``z ~ p_Z`` and returns ``f.inverse(z)[0]``.
This is the convention of nflows and of Papamakarios et al., "Normalizing Flows for Probabilistic
Modeling and Inference" (2021, arXiv:1912.02762). Flows whose fast direction is sampling (IAF) are
written as the ``Inverse`` of a bijector, not with the opposite convention.

Where there is no closed-form inverse (planar, radial, residual flows) a bijector leaves
:meth:`Bijector.inverse` alone -- it raises :class:`NoInverseError` naming the class -- or computes it
numerically with :func:`bisection_inverse` (monotone elementwise maps) or :func:`fixed_point_inverse`
(``z = x + g(x)`` with Lip(g) < 1).

>>> import torch
>>> from deepgen.bijectors import Affine, Compose, Logit, Reverse
>>> _ = torch.manual_seed(0)
>>> f = Compose(Logit(0.05), Reverse(), Affine(3))
>>> x = torch.rand(8, 3)
>>> z, log_det = f(x)  # data -> latent
>>> z.shape, log_det.shape  # one log-determinant per example
(torch.Size([8, 3]), torch.Size([8]))
>>> x2, inv_log_det = f.inverse(z)  # latent -> data
>>> torch.allclose(x2, x, atol=1e-5), torch.allclose(inv_log_det, -log_det)
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from deepgen.errors import DeepgenError


class NoInverseError(DeepgenError, NotImplementedError):
    """A bijector without a (closed-form or numerical) inverse was asked to invert, e.g. to sample."""


def sum_except_batch(t: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension but the first: ``(B, ...) -> (B,)``."""
    return t.sum(1) if t.dim() == 2 else t.reshape(t.shape[0], -1).sum(1)


def zero_log_det(x: torch.Tensor) -> torch.Tensor:
    """A ``(B,)`` zero log-determinant in ``x``'s dtype and device (volume-preserving maps)."""
    return x.new_zeros(x.shape[0])


class Bijector(nn.Module):
    """Base class of invertible maps, direction data -> latent (see the module docstring).

    Subclasses implement :meth:`forward` and, where they can, :meth:`inverse`. Both return
    ``(output, log_det)`` with ``log_det`` of shape ``(B,)`` in the input's dtype. Calling the module
    (``b(x)``) runs ``forward``.

    Adding a bijector: subclass this, implement both directions, and add one line to ``CASES`` in
    ``tests/bijectors/test_bijector_contract.py``; the contract test then checks round trips and the
    log-determinant against autograd in float64 (a test fails if a bijector class has no case).
    """

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Data -> latent: ``(z, log|det dz/dx|)``, shapes ``(B, *shape')`` and ``(B,)``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent -> data: ``(x, log|det dx/dz|)``; raises :class:`NoInverseError` unless overridden."""
        raise NoInverseError(
            f"{type(self).__name__} has no closed-form inverse, so it cannot map latents back to data "
            "(sampling); use a flow whose layers are invertible, or give it a numerical inverse"
        )


class Identity(Bijector):
    """``z = x``, log-det 0: the preprocessing of continuous data (see ``Flow.preprocess``)."""

    def forward(self, x, context=None):
        return x, zero_log_det(x)

    def inverse(self, z, context=None):
        return z, zero_log_det(z)


class Compose(Bijector):
    """Bijectors applied in order, data -> latent: ``forward`` runs ``b1, b2, ...``, ``inverse`` the reverse.

    Log-determinants add (chain rule); ``context`` reaches every member. Members are an
    ``nn.ModuleList``, so ``Compose(a, b)[1] is b`` and parameters are registered.

    >>> from deepgen.bijectors import Affine, Logit
    >>> f = Compose(Logit(), Affine(2))
    >>> z, ld = f(torch.rand(4, 2))  # logit first, then affine
    >>> f[0], ld.shape
    (Logit(alpha=0.05), torch.Size([4]))
    """

    def __init__(self, *bijectors: Bijector):
        super().__init__()
        for b in bijectors:
            if not isinstance(b, Bijector):
                raise TypeError(f"Compose takes Bijectors, got {type(b).__name__}")
        self.bijectors = nn.ModuleList(bijectors)

    def __len__(self) -> int:
        return len(self.bijectors)

    def __getitem__(self, i: int) -> Bijector:
        return self.bijectors[i]

    def __iter__(self):
        return iter(self.bijectors)

    def forward(self, x, context=None):
        lds = []
        for b in self.bijectors:
            x, ld = b(x, context)
            lds.append(ld)
        return x, _total(lds, x)

    def inverse(self, z, context=None):
        lds = []
        for b in reversed(self.bijectors):
            z, ld = b.inverse(z, context)
            lds.append(ld)
        return z, _total(lds, z)


def _total(lds: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """The sum of per-layer ``(B,)`` log-dets: one stacked sum, not one add per layer."""
    if not lds:
        return zero_log_det(like)
    if len(lds) == 1:
        return lds[0]
    if any(ld.shape != lds[0].shape for ld in lds):
        lds = torch.broadcast_tensors(*lds)
    return torch.stack(lds).sum(0)


class Inverse(Bijector):
    """The inverse of a bijector: ``Inverse(b).forward = b.inverse`` and vice versa (log-dets swap).

    Use it for a layer whose natural direction is latent -> data (IAF: fast sampling, slow density),
    or to reuse ``Sigmoid`` as a logit. ``Inverse(b).b is b``: parameters are shared.
    """

    def __init__(self, bijector: Bijector):
        super().__init__()
        self.b = bijector

    def forward(self, x, context=None):
        return self.b.inverse(x, context)

    def inverse(self, z, context=None):
        return self.b(z, context)


def bisection_inverse(
    f: Callable[[torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    lo: float | torch.Tensor,
    hi: float | torch.Tensor,
    *,
    iters: int = 100,
) -> torch.Tensor:
    """Solve ``f(x) = z`` elementwise for an increasing elementwise ``f``, by bisection in ``[lo, hi]``.

    Each step halves the bracket, so 100 steps reach float64 resolution for any sensible bracket;
    ``lo``/``hi`` must bracket the solution (broadcastable to ``z``). The result carries no gradient
    to the parameters of ``f`` (use it for sampling, not for training through the inverse).

    >>> bisection_inverse(torch.tanh, torch.tensor([0.5]), -5.0, 5.0)  # atanh(0.5)
    tensor([0.5493])
    """
    with torch.no_grad():
        lo = torch.as_tensor(lo, dtype=z.dtype, device=z.device).expand_as(z).clone()
        hi = torch.as_tensor(hi, dtype=z.dtype, device=z.device).expand_as(z).clone()
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            below = f(mid) < z
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        return 0.5 * (lo + hi)


def fixed_point_inverse(
    g: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, *, iters: int = 200, tol: float = 1e-10
) -> torch.Tensor:
    """Solve ``x + g(x) = z`` by the fixed-point iteration ``x <- z - g(x)`` (needs Lip(g) < 1).

    The inverse of a residual block (i-ResNet, Behrmann et al. 2019, arXiv:1811.00995): the iteration
    converges geometrically at rate Lip(g). Stops when no entry moves more than ``tol``.

    >>> fixed_point_inverse(lambda x: 0.5 * torch.tanh(x), torch.tensor([1.0]))  # x + tanh(x)/2 = 1
    tensor([0.6983])
    """
    with torch.no_grad():
        x = z.clone()
        for _ in range(iters):
            new = z - g(x)
            done = (new - x).abs().max() <= tol
            x = new
            if done:
                break
        return x
