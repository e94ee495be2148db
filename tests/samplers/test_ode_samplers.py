"""ODE integrators at their orders, and the continuous change of variables against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from deepgen.samplers import exact_divergence, hutchinson_divergence, odeint, odeint_log_density, sample_probes

A = torch.tensor([[-0.5, 1.0], [-1.0, -0.3]], dtype=torch.float64)  # a damped spiral, tr A = -0.8


def linear(t, x):
    return x @ A.T


def _x0(b=8, d=2, seed=0):
    return torch.randn(b, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _err(method, steps):
    x0 = _x0()
    exact = x0 @ torch.linalg.matrix_exp(A).T
    return (odeint(linear, x0, 0.0, 1.0, method=method, steps=steps) - exact).abs().max().item()


@pytest.mark.parametrize("method, order, steps", [("euler", 1, 40), ("heun", 2, 20), ("rk4", 4, 10)])
def test_fixed_step_methods_converge_at_their_order(method, order, steps):
    observed = math.log2(_err(method, steps) / _err(method, 2 * steps))
    assert abs(observed - order) < 0.25, observed


def test_rk45_is_accurate_in_both_directions_and_with_tuple_states():
    x0 = _x0()
    M = torch.linalg.matrix_exp(2 * A)
    x1 = odeint(linear, x0.float(), 0.0, 2.0, method="rk45")
    assert x1.dtype == torch.float64  # the state is integrated in float64 whatever the input
    assert (x1 - x0 @ M.T).abs().max() < 1e-6
    tight = odeint(linear, x0, 0.0, 2.0, method="rk45", rtol=1e-10, atol=1e-12)
    assert (tight - x0 @ M.T).abs().max() < 1e-9
    back = odeint(linear, x0 @ M.T, 2.0, 0.0, method="rk45")  # backwards in time, from the exact x(2)
    assert (back - x0).abs().max() < 1e-6
    # tuple state with a time-dependent field: (x, y) with dx/dt = A x, dy/dt = cos t
    x, y = odeint(
        lambda t, s: (s[0] @ A.T, torch.full_like(s[1], math.cos(t))), (x0, torch.zeros(8)), 0.0, 2.0, method="rk45"
    )
    assert (x - x0 @ M.T).abs().max() < 1e-6 and (y - math.sin(2.0)).abs().max() < 1e-6
    calls = []
    odeint(lambda t, x: calls.append(t) or linear(t, x), x0, 0.0, 2.0, method="rk45")
    assert 10 < len(calls) < 500  # adaptive: a smooth field needs few evaluations


def test_odeint_validation():
    x0 = _x0()
    with pytest.raises(ValueError, match="fixed-step"):
        odeint(linear, x0, 0.0, 1.0, method="rk4")
    with pytest.raises(ValueError, match="adaptive"):
        odeint(linear, x0, 0.0, 1.0, method="rk45", steps=10)
    with pytest.raises(ValueError, match="method must be"):
        odeint(linear, x0, 0.0, 1.0, method="rk3", steps=10)
    with pytest.raises(ValueError, match="f returned shapes"):
        odeint(lambda t, x: x[:, :1], x0, 0.0, 1.0, method="euler", steps=2)
    with pytest.raises(RuntimeError, match="max_steps"):
        odeint(linear, x0, 0.0, 1.0, method="rk45", max_steps=3)


def test_exact_trace_log_density_of_a_linear_flow():
    # dx/dt = (1 + t) A x: x(1) = M x(0) with M = expm(1.5 A), so x(1) ~ N(0, M M^T) when x(0) ~ N(0, I)
    # and log p_1(x_1) = log p_0(x_0) - 1.5 tr A. Checked against the Gaussian density of x(1) itself.
    x0 = _x0(16)
    M = torch.linalg.matrix_exp(1.5 * A)
    for method in ("rk4", "rk45"):
        with torch.no_grad():
            x1, dlogp = odeint_log_density(
                lambda t, x: (1 + t) * linear(t, x), x0, 0.0, 1.0, method=method, steps=40 if method == "rk4" else None
            )
        assert not x1.requires_grad and not dlogp.requires_grad and dlogp.shape == (16,)
        base = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64), torch.eye(2))
        pushed = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64), M @ M.T)
        assert (x1 - x0 @ M.T).abs().max() < 1e-6, method
        assert (base.log_prob(x0) + dlogp - pushed.log_prob(x1)).abs().max() < 1e-6, method


def _mlp_field(d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    W1, W2 = (
        torch.randn(16, d, generator=g, dtype=torch.float64),
        torch.randn(d, 16, generator=g, dtype=torch.float64),
    )
    b = torch.randn(16, generator=g, dtype=torch.float64)

    def f(t, x):
        return 0.3 * torch.tanh(x @ W1.T + t * b) @ W2.T

    return f


def test_exact_trace_matches_the_log_determinant_of_the_flow_map():
    # for a nonlinear field, delta_logp = -log|det d x(1) / d x(0)|: autograd through the solver
    f, x0 = _mlp_field(), _x0(4, 3)
    x1, dlogp = odeint_log_density(f, x0, 0.0, 1.0, steps=50)
    jac = torch.autograd.functional.jacobian(lambda z: odeint(f, z, 0.0, 1.0, steps=50), x0)  # (B, D, B, D)
    blocks = torch.stack([jac[i, :, i] for i in range(4)])
    assert (dlogp + torch.linalg.slogdet(blocks).logabsdet).abs().max() < 1e-6


def test_hutchinson_is_unbiased_for_the_exact_trace():
    f, x = _mlp_field(), _x0(4, 3)
    fn = lambda z: f(0.5, z)  # noqa: E731
    fx, exact = exact_divergence(fn, x)
    jac = torch.stack([torch.autograd.functional.jacobian(fn, x)[i, :, i] for i in range(4)])
    assert torch.allclose(exact, torch.diagonal(jac, dim1=1, dim2=2).sum(1), atol=1e-12)
    for kind in ("rademacher", "gaussian"):
        probes = sample_probes(x, 1000, kind, generator=torch.Generator().manual_seed(0))
        fx_h, est = hutchinson_divergence(fn, x, probes)
        per_probe = torch.einsum("kbi,bij,kbj->kb", probes, jac, probes)  # e^T J e, one per probe
        assert torch.allclose(fx_h, fx) and torch.allclose(est, per_probe.mean(0), atol=1e-10)
        se = per_probe.std(0) / math.sqrt(1000)
        assert ((est - exact).abs() < 4 * se).all(), (kind, est, exact, se)
    # along a whole trajectory: unbiased per sample, and fixed probes make it a smooth ODE for rk45
    x0 = _x0(2000, 3, seed=1)
    with torch.no_grad():
        _, exact_dlogp = odeint_log_density(f, x0, 0.0, 1.0, steps=10)
        _, hutch = odeint_log_density(
            f, x0, 0.0, 1.0, divergence="hutchinson", method="rk45", generator=torch.Generator().manual_seed(0)
        )
    diff = hutch - exact_dlogp
    assert diff.mean().abs() < 4 * diff.std() / math.sqrt(2000) and diff.std() > 0


def test_log_density_is_differentiable_when_autograd_is_on_and_seeded():
    # training a continuous flow backpropagates through the solver: f = a x has delta_logp = -D a t
    a = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    x1, dlogp = odeint_log_density(lambda t, x: a * x, _x0(5, 3), 0.0, 2.0, steps=4)
    assert torch.allclose(dlogp, torch.full((5,), -3 * 0.7 * 2.0, dtype=torch.float64))
    (g,) = torch.autograd.grad(dlogp.sum(), a)
    assert g.item() == pytest.approx(-5 * 3 * 2.0)
    f, x0 = _mlp_field(), _x0(6, 3)

    def run(seed):
        return odeint_log_density(
            f, x0, 0.0, 1.0, divergence="hutchinson", steps=5, generator=torch.Generator().manual_seed(seed)
        )[1]

    assert torch.equal(run(0), run(0)) and not torch.equal(run(0), run(1))
    with pytest.raises(ValueError, match="divergence must be"):
        odeint_log_density(f, x0, 0.0, 1.0, divergence="trace", steps=5)
