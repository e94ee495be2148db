"""Planar and radial flows (Rezende & Mohamed 2015, arXiv:1505.05770). Direction data -> latent.

Both act on vectors ``(B, D)``: ``z = x + (a small, constrained update)``, with a log-determinant in
closed form. A stack of them is the ``planar`` flow. Written in deepgen's direction (data -> latent):
the paper applies its maps to samples of the base density, here ``forward`` is the paper's map applied
to data, which is the same family of transforms.

* :class:`Planar` has no closed-form inverse, but an exact numerical one: a scalar monotone equation
  solved by bisection (sampling works; the inverse carries no gradients).
* :class:`Radial` is inverted in closed form (a quadratic in the radius).

>>> _ = torch.manual_seed(0)
>>> f = Planar(3)
>>> x = torch.randn(5, 3)
>>> z, log_det = f(x)
>>> x2, inv_log_det = f.inverse(z)  # bisection
>>> torch.allclose(x2, x, atol=1e-5), torch.allclose(inv_log_det, -log_det, atol=1e-5)
(True, True)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.bijectors.base import Bijector, bisection_inverse


def _norm(v: torch.Tensor) -> torch.Tensor:
    """Row norms of ``(B, D)`` without overflow of the squares (float32 entries up to its maximum)."""
    scale = v.detach().abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)
    return scale[:, 0] * torch.linalg.vector_norm(v / scale, dim=1)


def _check_vectors(name: str, x: torch.Tensor, features: int) -> None:
    if x.dim() != 2 or x.shape[1] != features:
        raise ValueError(f"{name}({features}) takes vectors (B, {features}), got shape {tuple(x.shape)}")


class Planar(Bijector):
    """Planar flow ``z = x + û tanh(wᵀx + b)`` on vectors ``(B, D)`` (data -> latent).

    Rezende & Mohamed, "Variational Inference with Normalizing Flows" (2015, arXiv:1505.05770),
    eqs. (10)-(12) for the map and its log-determinant and appendix A for invertibility:

    * ``log|det dz/dx| = log|1 + ûᵀ h'(wᵀx + b) w|`` with ``h = tanh`` (eq. 12);
    * the map is invertible iff ``wᵀû >= -1``; the learned ``u`` is replaced by
      ``û = u + (m(wᵀu) - wᵀu) w / ‖w‖²`` with ``m(a) = -1 + softplus(a)`` (appendix A), so that
      ``wᵀû = m(wᵀu) > -1`` for any ``u``.

    The log-det is computed as ``log(tanh²(s) + (1 - tanh²(s)) softplus(wᵀu))`` with ``s = wᵀx + b``,
    which equals ``log(1 + h'(s) wᵀû)`` but stays finite as ``wᵀû -> -1``.

    Inverse (latent -> data): there is no closed form, but an exact numerical one. Writing
    ``a = wᵀx``, the map gives ``wᵀz = a + wᵀû tanh(a + b)``, a strictly increasing function of the
    scalar ``a`` (its slope ``1 + wᵀû h'`` is positive) that differs from ``a`` by at most ``|wᵀû|``;
    so ``a`` is found by bisection in ``[wᵀz - |wᵀû|, wᵀz + |wᵀû|]`` (100 halvings: float
    resolution), then ``x = z - û tanh(a + b)``. Sampling therefore works, but the inverse runs without
    gradients: training through it (e.g. a reverse-KL objective on samples) gets no gradient.

    Args:
        features: ``D``. Parameters ``u, w`` (D,) and ``b`` () are initialised uniformly in
            ``±1/sqrt(D)`` from torch's global RNG.

    >>> f = Planar(2)
    >>> with torch.no_grad():
    ...     _ = f.u.copy_(torch.tensor([-5.0, 0.0])), f.w.copy_(torch.tensor([1.0, 0.0])), f.b.zero_()
    >>> bool((f.w @ f.u_hat()) >= -1)  # wᵀu = -5, but wᵀû = -1 + softplus(-5)
    True
    """

    def __init__(self, features: int):
        super().__init__()
        self.features = int(features)
        bound = 1.0 / math.sqrt(self.features)
        self.u = nn.Parameter(torch.empty(self.features).uniform_(-bound, bound))
        self.w = nn.Parameter(torch.empty(self.features).uniform_(-bound, bound))
        self.b = nn.Parameter(torch.empty(()).uniform_(-bound, bound))

    def extra_repr(self) -> str:
        return f"features={self.features}"

    def _constrained(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(û, 1 + wᵀû)``, the latter computed without cancellation (it is > 0)."""
        wu = self.w @ self.u
        w_sq = (self.w * self.w).sum()
        w_sq_safe = w_sq.clamp_min(torch.finfo(self.w.dtype).tiny)
        rho = w_sq / w_sq_safe  # 1 unless ‖w‖² underflows (w = 0: û = u, the map is a shift)
        u_hat = self.u + (F.softplus(wu) - 1 - wu) * self.w / w_sq_safe
        # 1 + wᵀû = 1 + wᵀu + (m(wᵀu) - wᵀu) rho = rho softplus(wᵀu) + (1 - rho)(1 + wᵀu)
        return u_hat, rho * F.softplus(wu) + (1 - rho) * (1 + wu)

    def u_hat(self) -> torch.Tensor:
        """``û``, the constrained ``u`` with ``wᵀû = -1 + softplus(wᵀu) > -1`` (appendix A)."""
        return self._constrained()[0]

    @staticmethod
    def _log_det(s: torch.Tensor, one_plus_wu_hat: torch.Tensor) -> torch.Tensor:
        t2 = torch.tanh(s).square()
        # 1 + h'(s) wᵀû = tanh² + (1 - tanh²)(1 + wᵀû): positive terms only
        return torch.log(t2 + (1 - t2) * one_plus_wu_hat)

    def forward(self, x, context=None):
        _check_vectors("Planar", x, self.features)
        u_hat, one_plus = self._constrained()
        s = x @ self.w + self.b  # (B,)
        z = x + torch.tanh(s).unsqueeze(1) * u_hat
        return z, self._log_det(s, one_plus)

    def inverse(self, z, context=None):
        _check_vectors("Planar", z, self.features)
        with torch.no_grad():
            u_hat, one_plus = self._constrained()
            m = one_plus - 1  # wᵀû > -1 (not recomputed as w @ û, which rounds)
            target = z @ self.w  # (B,) = a + m tanh(a + b)
            half = m.abs()
            a = bisection_inverse(lambda v: v + m * torch.tanh(v + self.b), target, target - half, target + half)
            s = a + self.b
            x = z - torch.tanh(s).unsqueeze(1) * u_hat
            return x, -self._log_det(s, one_plus)


class Radial(Bijector):
    """Radial flow ``z = x + β h(α, r) (x - x0)``, ``h = 1/(α + r)``, ``r = ‖x - x0‖`` on ``(B, D)``.

    Rezende & Mohamed, "Variational Inference with Normalizing Flows" (2015, arXiv:1505.05770),
    eqs. (13)-(14) and appendix A: with ``α = softplus(α')`` > 0 and ``β = -α + softplus(β')`` > -α
    (the invertibility constraint), data -> latent,

        ``log|det dz/dx| = (D - 1) log(1 + βh) + log(1 + βh + βh'(α, r) r)``,  ``h' = -1/(α + r)²``,

    computed as ``(D - 1) log((sp + r)/(α + r)) + log((α sp + 2αr + r²)/(α + r)²)`` with
    ``sp = softplus(β') = α + β`` (the same quantity, written with positive terms only, so it stays
    finite near the constraint and for large ``r``).

    Inverse (latent -> data) in closed form: ``z - x0 = (x - x0)(α + β + r)/(α + r)``, so
    ``s = ‖z - x0‖`` gives ``r² + (α + β - s) r - α s = 0``, whose positive root is taken (in the
    cancellation-free form), then ``x = x0 + (z - x0)(α + r)/(α + β + r)``. The inverse is
    differentiable.

    Args:
        features: ``D``. ``x0`` (D,) is initialised from a standard normal (torch's global RNG),
            ``α'``, ``β'`` are scalars initialised at 0.

    >>> f = Radial(2)
    >>> x = torch.randn(4, 2)
    >>> torch.allclose(f.inverse(f(x)[0])[0], x, atol=1e-5)
    True
    """

    def __init__(self, features: int):
        super().__init__()
        self.features = int(features)
        self.x0 = nn.Parameter(torch.randn(self.features))
        self.alpha_raw = nn.Parameter(torch.zeros(()))
        self.beta_raw = nn.Parameter(torch.zeros(()))

    def extra_repr(self) -> str:
        return f"features={self.features}"

    def alpha_beta(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(α, β)`` with ``α > 0`` and ``β > -α``."""
        alpha = F.softplus(self.alpha_raw)
        return alpha, F.softplus(self.beta_raw) - alpha

    def _log_det(self, r: torch.Tensor) -> torch.Tensor:
        alpha = F.softplus(self.alpha_raw)
        sp = F.softplus(self.beta_raw)  # α + β > 0
        ar = alpha + r
        first = (self.features - 1) * (torch.log(sp + r) - torch.log(ar))
        # (α sp + 2αr + r²)/(α + r)² = a sp/(α + r) + q (1 + a), a = α/(α + r), q = r/(α + r): no r² to overflow
        a, q = alpha / ar, r / ar
        return first + torch.log(a * sp / ar + q * (1 + a))

    def forward(self, x, context=None):
        _check_vectors("Radial", x, self.features)
        alpha, beta = self.alpha_beta()
        d = x - self.x0
        r = _norm(d)
        z = x + (beta / (alpha + r)).unsqueeze(1) * d
        return z, self._log_det(r)

    def inverse(self, z, context=None):
        _check_vectors("Radial", z, self.features)
        alpha = F.softplus(self.alpha_raw)
        sp = F.softplus(self.beta_raw)  # α + β
        y = z - self.x0
        s = _norm(y)
        p = sp - s
        root = torch.hypot(p, 2 * torch.sqrt(alpha * s))  # sqrt(p² + 4αs) without overflow
        # positive root of r² + p r - α s = 0, in the form that does not cancel for either sign of p
        r = torch.where(p > 0, 2 * alpha * s / (p + root).clamp_min(torch.finfo(z.dtype).tiny), (root - p) / 2)
        x = self.x0 + y * ((alpha + r) / (sp + r)).unsqueeze(1)
        return x, -self._log_det(r)
