"""Rational-quadratic splines (Durkan et al. 2019, arXiv:1906.04032): monotone, C1 with identity tails,
the identity at zero parameters, exact closed-form inverse, and finite for any finite input."""

from __future__ import annotations

import pytest
import torch

from deepgen.bijectors.splines import RQSplineTransform, rational_quadratic_spline


def _params(n: int, k: int, scale: float = 1.0, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3 * k - 1, generator=g) * scale).to(dtype)


def _split(p: torch.Tensor, k: int):
    return p[..., :k], p[..., k : 2 * k], p[..., 2 * k :]


def test_num_params_and_repr():
    t = RQSplineTransform(num_bins=5, bound=2.0)
    assert t.num_params == 14 and RQSplineTransform().num_params == 23
    assert repr(t) == "RQSplineTransform(num_bins=5, bound=2.0)"


@pytest.mark.parametrize("k", [1, 2, 5, 8])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.float64, 1e-14)])
def test_zero_parameters_are_the_identity(k, dtype, tol):
    t = RQSplineTransform(k, bound=3.0)
    x = torch.linspace(-5, 5, 101, dtype=dtype)
    p = torch.zeros(101, t.num_params, dtype=dtype)
    for direction in (t.forward, t.inverse):
        y, ld = direction(x, p)
        assert y.dtype == dtype and ld.dtype == dtype
        assert (y - x).abs().max() <= tol * 5 and ld.abs().max() <= tol


def test_monotone_continuous_and_derivative_matches_finite_differences():
    k, n = 6, 4001
    t = RQSplineTransform(k, bound=2.0)
    p = _params(1, k, seed=1).expand(n, -1)  # one spline, a fine grid across both tails
    x = torch.linspace(-3, 3, n, dtype=torch.float64)
    y, ld = t(x, p)
    dy = y.diff()
    assert (dy > 0).all()  # strictly increasing
    assert dy.max() <= ld.exp().max() * x.diff().max() * (1 + 1e-6)  # no jumps: steps bounded by the slope
    h = 1e-6
    fd = (t(x + h, p)[0] - t(x - h, p)[0]) / (2 * h)
    # C1 everywhere (at knots and at ±bound too), so central differences match to O(h)
    assert torch.allclose(fd, ld.exp(), rtol=1e-5, atol=1e-6)
    tails = x.abs() >= 2.0
    assert torch.equal(y[tails], x[tails]) and (ld[tails] == 0).all()


def test_boundary_derivatives_are_one():
    k = 4
    t = RQSplineTransform(k, bound=1.5)
    p = _params(2, k, scale=2.0, seed=2)
    x = torch.tensor([-1.5 + 1e-9, 1.5 - 1e-9], dtype=torch.float64)
    _, ld = t(x, p)
    assert ld.abs().max() < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inputs_outside_the_interval_pass_through(dtype):
    t = RQSplineTransform(8, bound=3.0)
    x = torch.tensor([-1e6, 1e6, -3.0, 3.0, -3.5, 1e30, -1e30], dtype=dtype)
    p = _params(len(x), 8, scale=3.0, seed=3, dtype=dtype)
    for direction in (t.forward, t.inverse):
        y, ld = direction(x, p)
        assert torch.equal(y, x) and (ld == 0).all()
    # gradients too: no NaN leaks from the spline branch evaluated at huge inputs
    xr, pr = x.clone().requires_grad_(), p.clone().requires_grad_()
    y, ld = t.inverse(xr, pr)
    (y.sum() + ld.sum()).backward()
    assert torch.isfinite(xr.grad).all() and torch.isfinite(pr.grad).all()
    assert (xr.grad == 1).all() and (pr.grad == 0).all()


def test_round_trip_float64():
    k, n = 8, 2000
    t = RQSplineTransform(k, bound=3.0)
    p = _params(n, k, seed=4)
    x = torch.linspace(-4, 4, n, dtype=torch.float64)
    y, ld = t(x, p)
    x2, ld2 = t.inverse(y, p)
    assert (x2 - x).abs().max() < 1e-10 and (ld + ld2).abs().max() < 1e-10
    z = torch.linspace(-4, 4, n, dtype=torch.float64)
    x3, ld3 = t.inverse(z, p)
    z2, ld4 = t(x3, p)
    assert (z2 - z).abs().max() < 1e-10 and (ld3 + ld4).abs().max() < 1e-10


def test_round_trip_float32():
    t = RQSplineTransform(8, bound=3.0)
    p = _params(500, 8, seed=5, dtype=torch.float32)
    x = torch.linspace(-4, 4, 500)
    y, ld = t(x, p)
    x2, ld2 = t.inverse(y, p)
    # where the spline is flat (slopes down to e^-8 here) float32 rounding of y is amplified by
    # 1/slope in x: measure the error in y units, which is what the inverse controls
    assert ((x2 - x).abs() * ld.exp()).max() < 1e-5 and (ld + ld2).abs().max() < 1e-3
    z2, _ = t(x2, p)
    assert (z2 - y).abs().max() < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_large_random_parameters_stay_finite(dtype):
    k, n = 8, 1000
    t = RQSplineTransform(k, bound=3.0)
    p = _params(n, k, scale=50.0, seed=6, dtype=dtype).requires_grad_()
    g = torch.Generator().manual_seed(7)
    x = (torch.randn(n, generator=g) * 3).to(dtype)
    y, ld = t(x, p)
    xb, ldb = t.inverse(x, p)
    (y.sum() + ld.sum() + xb.sum() + ldb.sum()).backward()
    for v in (y, ld, xb, ldb, p.grad):
        assert torch.isfinite(v).all()
    assert (y.abs() <= x.abs().clamp_min(3.0)).all() and (xb.abs() <= x.abs().clamp_min(3.0)).all()
    # forward(inverse(z)) is well conditioned even where the spline is nearly flat
    z2, _ = t(xb.detach(), p.detach())
    assert (z2 - x).abs().max() < (1e-3 if dtype == torch.float32 else 1e-9)


def test_function_on_raw_parameters_and_batch_shapes():
    k = 3
    p = _params(12, k, seed=8).reshape(3, 4, 3 * k - 1)
    x = torch.randn(3, 4, dtype=torch.float64)
    y, ld = rational_quadratic_spline(x, *_split(p, k), bound=2.0)
    assert y.shape == ld.shape == (3, 4)
    x2, _ = rational_quadratic_spline(y, *_split(p, k), inverse=True, bound=2.0)
    assert torch.allclose(x2, x, atol=1e-12)


def test_bad_shapes_and_options_say_so():
    t = RQSplineTransform(4)
    with pytest.raises(ValueError, match="params of shape"):
        t(torch.zeros(3), torch.zeros(3, 10))
    with pytest.raises(ValueError, match="derivatives"):
        rational_quadratic_spline(torch.zeros(2), torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="min_bin_width"):
        RQSplineTransform(4, min_bin_width=0.3)
    with pytest.raises(ValueError, match="bound"):
        RQSplineTransform(4, bound=0.0)
    with pytest.raises(ValueError, match="min_derivative"):
        RQSplineTransform(4, min_derivative=1.5)
