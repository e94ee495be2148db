"""Monotone rational-quadratic splines with linear tails: the elementwise law of neural spline flows.

Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows" (2019, arXiv:1906.04032), section 3.1
and appendix A, after Gregory & Delbourgo, "Piecewise rational quadratic interpolation to monotonic
data" (IMA J. Numer. Anal. 2, 1982). On ``[-B, B]`` the map passes through K + 1 increasing knots
``(x_k, y_k)`` with positive derivatives ``d_k`` at them; in bin k, with ``w = x_{k+1} - x_k``,
``h = y_{k+1} - y_k``, ``s = h / w`` and ``xi = (x - x_k) / w`` in [0, 1),

    y = y_k + h [s xi^2 + d_k xi (1 - xi)] / [s + (d_{k+1} + d_k - 2 s) xi (1 - xi)]
    dy/dx = s^2 [d_{k+1} xi^2 + 2 s xi (1 - xi) + d_k (1 - xi)^2] / [s + (d_{k+1} + d_k - 2 s) xi (1 - xi)]^2

(section 3.1). Outside ``(-B, B)`` the map is the identity; the end derivatives are fixed to 1, so
the whole map is continuously differentiable on the real line and sends any finite input to a finite
output. The inverse in a bin solves ``a xi^2 + b xi + c = 0`` with

    a = h (s - d_k) + (y - y_k)(d_{k+1} + d_k - 2 s),  b = h d_k - (y - y_k)(d_{k+1} + d_k - 2 s),
    c = -s (y - y_k),

taking the root in the cancellation-free form ``xi = 2 c / (-b - sqrt(b^2 - 4 a c))`` (appendix A).

>>> t = RQSplineTransform(num_bins=4)
>>> x = torch.tensor([-5.0, -1.0, 0.5, 3.0, 1e6])
>>> params = torch.randn(5, t.num_params)  # raw widths, heights, interior derivatives
>>> y, log_dy_dx = t(x, params)
>>> y[0].item(), y[-1].item(), log_dy_dx[0].item()  # identity outside [-3, 3]
(-5.0, 1000000.0, 0.0)
>>> x2, log_dx_dy = t.inverse(y, params)
>>> torch.allclose(x2, x, atol=1e-4), torch.allclose(log_dx_dy, -log_dy_dx, atol=1e-4)
(True, True)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from deepgen.bijectors.transforms import ElementwiseTransform


def _check_options(num_bins: int, bound: float, min_bin_width: float, min_bin_height: float, min_derivative: float):
    if num_bins < 1:
        raise ValueError(f"a spline needs at least one bin, got num_bins={num_bins}")
    if not bound > 0:
        raise ValueError(f"spline bound must be positive, got {bound}")
    for name, value in (("min_bin_width", min_bin_width), ("min_bin_height", min_bin_height)):
        if not 0 <= value * num_bins < 1:
            raise ValueError(f"{name} * num_bins must lie in [0, 1), got {value} * {num_bins}")
    if not 0 < min_derivative < 1:
        raise ValueError(f"min_derivative must lie in (0, 1) (so that raw 0 gives slope 1), got {min_derivative}")


def _knots(raw: torch.Tensor, bound: float, min_size: float) -> torch.Tensor:
    """(..., K) raw sizes -> (..., K + 1) increasing knots from -bound to bound, each bin >= 2 bound min_size."""
    k = raw.shape[-1]
    # softmax written out: over a last dimension of a few bins it is ~1.5x faster forward and
    # backward than torch.softmax on CPU (benchmarks/flow_speed.py --profile); same values
    e = torch.exp(raw - raw.detach().amax(-1, keepdim=True))
    sizes = min_size + (1 - min_size * k) * (e / e.sum(-1, keepdim=True))
    inner = 2 * bound * torch.cumsum(sizes[..., :-1], dim=-1) - bound
    ends = raw.new_full((*raw.shape[:-1], 1), bound)
    return torch.cat([-ends, inner, ends], dim=-1)


def _derivative_offset(min_derivative: float) -> float:
    """``c`` with ``min_derivative + softplus(c) = 1``: raw derivative 0 gives slope 1."""
    return math.log(math.expm1(1 - min_derivative))


def rational_quadratic_spline(
    x: torch.Tensor,
    widths: torch.Tensor,
    heights: torch.Tensor,
    derivatives: torch.Tensor,
    *,
    inverse: bool = False,
    bound: float = 3.0,
    min_bin_width: float = 1e-3,
    min_bin_height: float = 1e-3,
    min_derivative: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The monotone rational-quadratic spline of the module docstring, elementwise, with linear tails.

    Args:
        x: inputs of any shape S (outputs of the spline when ``inverse=True``).
        widths, heights: (*S, K) raw bin widths and heights; a softmax, a floor of ``min_bin_*``
            (as a fraction of the interval) and a scaling to ``[-bound, bound]`` give the knots.
        derivatives: (*S, K - 1) raw derivatives at the interior knots; the slope is
            ``min_derivative + softplus(raw + c)`` with ``c`` chosen so that raw 0 gives slope 1.
            The slopes at ``±bound`` are 1, matching the identity tails.
        inverse: map outputs back to inputs (closed form, the root of a quadratic).
        bound: B, the spline acts on ``(-B, B)`` and is the identity elsewhere.

    Returns:
        ``(y, log|dy/dx|)`` (``(x, log|dx/dy|)`` when ``inverse``), both of shape S. All-zero
        parameters give the identity (uniform bins, unit slopes).
    """
    num_bins = widths.shape[-1]
    _check_options(num_bins, bound, min_bin_width, min_bin_height, min_derivative)
    if heights.shape[-1] != num_bins or derivatives.shape[-1] != num_bins - 1:
        raise ValueError(
            f"a {num_bins}-bin spline needs {num_bins} heights and {num_bins - 1} derivatives, "
            f"got {heights.shape[-1]} and {derivatives.shape[-1]}"
        )
    inside = (x > -bound) & (x < bound)
    # evaluate the spline at a clamped copy: the unused branch of torch.where stays finite (no NaN
    # gradients from huge inputs), and the identity is selected outside
    xc = x.clamp(-bound, bound)
    xs = _knots(widths, bound, min_bin_width)
    ys = _knots(heights, bound, min_bin_height)
    d = min_derivative + F.softplus(derivatives + _derivative_offset(min_derivative))
    d = F.pad(d, (1, 1), value=1.0)

    edges = ys if inverse else xs
    idx = (xc[..., None] >= edges[..., 1:-1]).sum(-1, keepdim=True)

    def at(t: torch.Tensor, shift: int = 0) -> torch.Tensor:
        return t.gather(-1, idx + shift).squeeze(-1)

    x0, y0, d0, d1 = at(xs), at(ys), at(d), at(d, 1)
    w, h = at(xs, 1) - x0, at(ys, 1) - y0
    s = h / w
    beta = d1 + d0 - 2 * s
    if inverse:
        dy = xc - y0
        a = h * (s - d0) + dy * beta
        b = h * d0 - dy * beta
        c = -s * dy
        disc = (b * b - 4 * a * c).clamp_min(0)
        xi = 2 * c / (-b - torch.sqrt(disc))
        out = x0 + xi * w
    else:
        xi = (xc - x0) / w
    t = xi * (1 - xi)
    denom = s + beta * t
    log_deriv = 2 * torch.log(s) + torch.log(d1 * xi * xi + 2 * s * t + d0 * (1 - xi) ** 2) - 2 * torch.log(denom)
    if inverse:
        log_deriv = -log_deriv
    else:
        out = y0 + h * (s * xi * xi + d0 * t) / denom
    return torch.where(inside, out, x), torch.where(inside, log_deriv, torch.zeros_like(log_deriv))


class RQSplineTransform(ElementwiseTransform):
    """Rational-quadratic spline law with linear tails (Durkan et al. 2019, arXiv:1906.04032, section 3.1).

    The elementwise map of neural spline flows, for coupling and autoregressive layers: see the
    module docstring for the equations and :func:`rational_quadratic_spline` for the parametrisation.
    ``params`` has shape ``(*x.shape, 3 K - 1)``: K raw widths, K raw heights, K - 1 raw interior
    derivatives. ``forward`` maps data to latent (``(z, log|dz/dx|)``), ``inverse`` latent to data;
    both are exact and closed-form. All-zero parameters give the identity, so a conditioner with a
    zeroed last layer starts the flow at the identity. Inputs outside ``(-bound, bound)`` pass
    through unchanged with log-derivative 0.

    >>> t = RQSplineTransform(num_bins=8, bound=3.0)
    >>> t.num_params
    23
    >>> x = torch.linspace(-4, 4, 9)
    >>> z, ld = t(x, torch.zeros(9, t.num_params))
    >>> torch.allclose(z, x, atol=1e-6), float(ld.abs().max()) < 1e-6
    (True, True)
    """

    def __init__(
        self,
        num_bins: int = 8,
        bound: float = 3.0,
        *,
        min_bin_width: float = 1e-3,
        min_bin_height: float = 1e-3,
        min_derivative: float = 1e-3,
    ):
        super().__init__()
        _check_options(num_bins, bound, min_bin_width, min_bin_height, min_derivative)
        self.num_bins, self.bound = int(num_bins), float(bound)
        self.min_bin_width, self.min_bin_height, self.min_derivative = min_bin_width, min_bin_height, min_derivative
        self.num_params = 3 * self.num_bins - 1

    def extra_repr(self) -> str:
        return f"num_bins={self.num_bins}, bound={self.bound}"

    def _spline(self, x: torch.Tensor, params: torch.Tensor, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if params.shape != (*x.shape, self.num_params):
            raise ValueError(
                f"RQSplineTransform({self.num_bins} bins) needs params of shape {(*x.shape, self.num_params)}, "
                f"got {tuple(params.shape)}"
            )
        k = self.num_bins
        return rational_quadratic_spline(
            x,
            params[..., :k],
            params[..., k : 2 * k],
            params[..., 2 * k :],
            inverse=inverse,
            bound=self.bound,
            min_bin_width=self.min_bin_width,
            min_bin_height=self.min_bin_height,
            min_derivative=self.min_derivative,
        )

    def forward(self, x, params):
        return self._spline(x, params, inverse=False)

    def inverse(self, z, params):
        return self._spline(z, params, inverse=True)
