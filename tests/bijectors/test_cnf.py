"""Continuous flows (FFJORD): log-det sign and value on linear fields, Hutchinson's unbiasedness,
training by maximum likelihood, round trips, NFE counting and the RNODE regularisers.

The bijector contract (float64 round trips, log-dets vs autograd) runs on the cases in cases_cnf.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from deepgen.bijectors.cnf import ConcatSquashLinear, ContinuousFlow, ODENet

A = torch.tensor([[-0.5, 1.0, 0.2], [-1.0, 0.3, 0.0], [0.4, -0.2, 0.1]], dtype=torch.float64)  # tr A = -0.1


class LinearField(nn.Module):
    """``f(t, x) = A x``: the flow map is ``expm(t A)``, its log-det ``t tr(A)``."""

    def __init__(self, a: torch.Tensor):
        super().__init__()
        self.a = nn.Parameter(a.clone())

    def forward(self, t, x):
        return x @ self.a.T


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=_g(seed), dtype=dtype)


def _random_net(features: int, seed: int = 0, hidden=(16, 16), **kw) -> ODENet:
    net = ODENet(features, hidden=hidden, activation="tanh", **kw)
    g = _g(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.6)
    return net.double()


def _nll(z: torch.Tensor, log_det: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood under a standard normal base."""
    d = z[0].numel()
    return (0.5 * z.flatten(1).pow(2).sum(1) + 0.5 * d * math.log(2 * math.pi) - log_det).mean()


def test_linear_field_log_det_is_t1_trace_in_both_directions():
    t1 = 0.7
    flow = ContinuousFlow(LinearField(A), t1=t1, rtol=1e-10, atol=1e-10).double().eval()
    x = _randn(5, 3)
    z, ld = flow(x)
    assert flow.log_det_is_exact
    torch.testing.assert_close(z, x @ torch.linalg.matrix_exp(t1 * A).T, atol=1e-8, rtol=0)
    torch.testing.assert_close(ld, torch.full((5,), t1 * A.trace().item(), dtype=torch.float64), atol=1e-12, rtol=0)
    back, inv_ld = flow.inverse(z)
    torch.testing.assert_close(back, x, atol=1e-8, rtol=0)
    torch.testing.assert_close(inv_ld, -ld, atol=1e-12, rtol=0)
    # training mode, Hutchinson: for a diagonal A every Rademacher probe gives e^T A e = tr(A) exactly
    diag = torch.diag(torch.tensor([0.3, -0.8, 0.2], dtype=torch.float64))
    flow = ContinuousFlow(LinearField(diag), t1=t1, method="rk4", steps=3).double().train()
    assert not flow.log_det_is_exact
    torch.testing.assert_close(flow(x)[1], torch.full((5,), t1 * -0.3, dtype=torch.float64), atol=1e-12, rtol=0)


def test_hutchinson_log_det_is_unbiased():
    flow = ContinuousFlow(_random_net(3), method="rk4", steps=6, generator=_g(1))
    x = _randn(4, 3, seed=2)
    flow.eval()
    with torch.no_grad():
        exact = flow(x)[1]
    flow.train()
    reps = 500
    with torch.no_grad():  # every row of the batch draws its own probes: 500 estimates per point at once
        est = flow(x.repeat_interleave(reps, 0))[1].reshape(4, reps)
        again = flow(x)[1]
    assert not torch.allclose(again, flow(x)[1])  # fresh probes for every call
    mean, se = est.mean(1), est.std(1) / math.sqrt(reps)
    assert (se > 1e-4).all()  # a genuinely stochastic estimate
    assert ((mean - exact).abs() < 3 * se).all(), ((mean - exact) / se).tolist()


def test_training_step_is_differentiable_and_reduces_nll():
    torch.manual_seed(0)
    data = torch.randn(1024, 2, generator=_g(3)) * torch.tensor([0.4, 1.5]) + torch.tensor([1.0, 0.0])
    held_out = torch.randn(512, 2, generator=_g(4)) * torch.tensor([0.4, 1.5]) + torch.tensor([1.0, 0.0])
    flow = ContinuousFlow(ODENet(2, hidden=(16, 16)), method="rk4", steps=4, generator=_g(5))

    def held_out_nll():
        flow.eval()
        with torch.no_grad():
            out = _nll(*flow(held_out)).item()
        flow.train()
        return out

    before = held_out_nll()
    opt = torch.optim.Adam(flow.parameters(), lr=3e-2)
    for i in range(30):
        batch = data[torch.randint(0, len(data), (256,), generator=_g(10 + i))]
        z, ld = flow(batch)
        assert z.dtype == torch.float32 and ld.dtype == torch.float32 and ld.requires_grad
        loss = _nll(z, ld)
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in flow.parameters())
        opt.step()
    after = held_out_nll()
    assert after < before - 0.3, (before, after)


@pytest.mark.parametrize(
    "shape, context",
    [((6, 2), None), ((4, 1, 2, 2), None), ((5, 2), "labels"), ((5, 2), "floats")],
    ids=["vector", "image", "labels", "float-context"],
)
def test_inverse_of_forward_round_trip(shape, context):
    features = math.prod(shape[1:])
    ctx = {None: None, "labels": torch.tensor([0, 1, 2, 0, 1]), "floats": _randn(5, 3, seed=6)}[context]
    net = _random_net(features, hidden=(8,), context_features=None if context is None else 3)
    flow = ContinuousFlow(net, rtol=1e-9, atol=1e-9)
    x = _randn(*shape, seed=7)
    for train in (True, False):
        flow.train(train)
        z, ld = flow(x, ctx)
        assert z.shape == x.shape and ld.shape == (shape[0],)
        back, inv_ld = flow.inverse(z, ctx)
        torch.testing.assert_close(back, x, atol=1e-7, rtol=0)
        if not train:  # eval: the exact trace, so the two log-dets cancel
            torch.testing.assert_close(inv_ld, -ld, atol=1e-7, rtol=0)


def test_last_nfe_counts_evaluations_and_grows_with_tighter_tolerance():
    x = _randn(8, 2, seed=8)
    flow = ContinuousFlow(_random_net(2, hidden=(8,))).eval()
    nfes = []
    for tol in (1e-3, 1e-6, 1e-9):
        flow.rtol = flow.atol = tol
        flow(x)
        nfes.append(flow.last_nfe)
    assert nfes[0] < nfes[1] < nfes[2], nfes
    fixed = ContinuousFlow(_random_net(2, hidden=(8,)), method="rk4", steps=5).eval()
    fixed(x)
    assert fixed.last_nfe == 20  # four stages per step
    fixed.inverse(x)
    assert fixed.last_nfe == 20


def test_divergence_mode_follows_train_eval_and_dimension():
    flow = ContinuousFlow(ODENet(2, hidden=(4,)))
    assert not flow.train().log_det_is_exact and flow.eval().log_det_is_exact
    big = ContinuousFlow(ODENet(64, hidden=(4,)), method="rk4", steps=2).eval()
    assert not big.log_det_is_exact  # D = 64 > exact_max_dim: Hutchinson in eval too
    x = torch.rand(3, 1, 8, 8)  # an 8x8 image batch, flattened inside
    z, ld = big(x)
    assert z.shape == x.shape and ld.shape == (3,) and z.dtype == torch.float32
    assert ContinuousFlow(ODENet(2), train_divergence="exact").log_det_is_exact
    assert not ContinuousFlow(ODENet(2), eval_divergence="hutchinson").eval().log_det_is_exact


def test_no_grad_outputs_are_detached():
    flow = ContinuousFlow(ODENet(2, hidden=(4,)), method="rk4", steps=2)
    with torch.no_grad():
        z, ld = flow(torch.randn(3, 2))
    assert not z.requires_grad and not ld.requires_grad


def test_rnode_regularisers_on_a_diagonal_linear_field():
    a = torch.tensor([0.3, -0.8], dtype=torch.float64)
    t1 = 0.5
    flow = ContinuousFlow(LinearField(torch.diag(a)), t1=t1, rtol=1e-10, atol=1e-10, regularize=True).double()
    x = _randn(4, 2, seed=9)
    z, ld = flow(x)
    reg = flow.last_regularization
    # |A x(t)|^2 = sum_i a_i^2 x_i^2 exp(2 a_i t) integrates to sum_i a_i x_i^2 (exp(2 a_i t1) - 1) / 2
    kinetic = (a * x.pow(2) * (torch.exp(2 * a * t1) - 1) / 2).sum(1)
    torch.testing.assert_close(reg["kinetic"], kinetic, atol=1e-8, rtol=0)
    # |e^T A|^2 = sum_i a_i^2 for every Rademacher probe: t1 |A|_F^2 exactly
    torch.testing.assert_close(reg["jacobian"], torch.full((4,), t1 * a.pow(2).sum().item(), dtype=torch.float64))
    torch.testing.assert_close(ld, torch.full((4,), t1 * a.sum().item(), dtype=torch.float64))
    (reg["kinetic"].mean() + reg["jacobian"].mean()).backward()
    assert flow.net.a.grad is not None
    flow.eval()
    flow(x)
    assert flow.last_regularization is None


@pytest.mark.parametrize("divergence", ["exact", "hutchinson"])
def test_regularised_solve_gives_the_same_flow(divergence):
    x = _randn(5, 3, seed=11)
    out = []
    for regularize in (False, True):
        flow = ContinuousFlow(
            _random_net(3), method="rk4", steps=4, train_divergence=divergence, regularize=regularize, generator=_g(0)
        )
        out.append(flow(x))
    torch.testing.assert_close(out[1][0], out[0][0], atol=1e-12, rtol=0)
    torch.testing.assert_close(out[1][1], out[0][1], atol=1e-12, rtol=0)


def test_concat_squash_is_time_dependent():
    layer = ConcatSquashLinear(2, 3)
    x = torch.randn(4, 2)
    assert not torch.allclose(layer(x, torch.zeros(4, 1)), layer(x, torch.ones(4, 1)))


def test_validation():
    with pytest.raises(ValueError, match="method"):
        ContinuousFlow(ODENet(2), method="midpoint")
    with pytest.raises(ValueError, match="steps"):
        ContinuousFlow(ODENet(2), method="rk4")
    with pytest.raises(ValueError, match="steps"):
        ContinuousFlow(ODENet(2), steps=4)
    with pytest.raises(ValueError, match="eval_divergence"):
        ContinuousFlow(ODENet(2), eval_divergence="stochastic")
    with pytest.raises(ValueError, match="t1"):
        ContinuousFlow(ODENet(2), t1=0.0)
    with pytest.raises(ValueError, match="activation"):
        ODENet(2, activation="relu")
    with pytest.raises(ValueError, match="context"):
        ContinuousFlow(ODENet(2, context_features=3), method="rk4", steps=1)(torch.randn(2, 2))
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        ODENet(2)(0.0, torch.randn(2, 3))
