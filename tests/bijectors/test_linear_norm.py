"""What InvertibleLinear, Conv1x1, ActNorm and BatchNormFlow compute (the contract is in cases_linear.py)."""

from __future__ import annotations

import math

import pytest
import torch

from deepgen.bijectors.linear import Conv1x1, InvertibleLinear, InvertibleMatrix, random_rotation
from deepgen.bijectors.normalization import ActNorm, BatchNormFlow

F64 = torch.float64


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _perturb(module, scale: float = 0.3, seed: int = 0):
    g = _g(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return module


# ---- InvertibleLinear / Conv1x1 -----------------------------------------------------------------------------------


def test_random_rotation_is_orthogonal_and_seeded():
    q = random_rotation(5, seed=3)
    assert torch.allclose(q @ q.T, torch.eye(5, dtype=F64), atol=1e-12)
    assert torch.equal(q, random_rotation(5, seed=3))
    assert not torch.allclose(q, random_rotation(5, seed=4))


@pytest.mark.parametrize("lu", [True, False])
def test_initial_weight_is_the_seeded_rotation(lu):
    m = InvertibleMatrix(4, lu=lu, seed=7)  # stored in the default dtype, float32
    assert torch.allclose(m.matrix(), random_rotation(4, seed=7).float(), atol=1e-6)
    assert abs(m.log_abs_det().item()) < 1e-6


def test_lu_log_det_is_slogdet_of_the_composed_weight():
    m = _perturb(InvertibleMatrix(6, seed=1).double(), 0.5)
    w = m.matrix()
    # the composed W really is P L (U + diag(sign * exp(log_s))) with the masked parts only
    lower = torch.tril(m.lower, -1) + torch.eye(6, dtype=F64)
    v = torch.triu(m.upper, 1) + torch.diag(m.sign_s * m.log_s.exp())
    assert torch.allclose(w, m.perm @ lower @ v)
    assert torch.allclose(m.log_abs_det(), torch.linalg.slogdet(w)[1], atol=1e-12)
    z = torch.randn(3, 6, generator=_g(), dtype=F64)
    assert torch.allclose(m.solve_rows(z), torch.linalg.solve(w, z.T).T, atol=1e-12)


@pytest.mark.parametrize("lu", [True, False])
def test_invertible_linear_is_w_times_x(lu):
    f = _perturb(InvertibleLinear(5, lu=lu, seed=2).double())
    x = torch.randn(4, 5, generator=_g(1), dtype=F64)
    z, ld = f(x)
    w = f.matrix.matrix()
    assert torch.allclose(z, x @ w.T)
    assert torch.allclose(ld, torch.linalg.slogdet(w)[1].expand(4))
    back, inv_ld = f.inverse(z)
    assert torch.allclose(back, x, atol=1e-12) and torch.allclose(inv_ld, -ld)


@pytest.mark.parametrize("lu", [True, False])
def test_conv1x1_is_the_linear_map_at_every_pixel(lu):
    conv = _perturb(Conv1x1(3, lu=lu, seed=5).double(), seed=2)
    lin = InvertibleLinear(3, lu=lu, seed=5).double()
    lin.load_state_dict(conv.state_dict())  # the same weight construction, the same parameter names
    x = torch.randn(2, 3, 4, 5, generator=_g(), dtype=F64)
    z, ld = conv(x)
    rows = x.permute(0, 2, 3, 1).reshape(-1, 3)
    assert torch.allclose(z.permute(0, 2, 3, 1).reshape(-1, 3), lin(rows)[0])
    assert torch.allclose(ld, 4 * 5 * torch.linalg.slogdet(conv.matrix.matrix())[1].expand(2))
    assert torch.allclose(conv.inverse(z)[0], x, atol=1e-12)


def test_lu_parameters_train():
    f = InvertibleLinear(3)
    x = torch.randn(8, 3, generator=_g())
    z, ld = f(x)
    (z.pow(2).sum() - ld.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in f.parameters())
    assert {n for n, _ in f.named_buffers()} == {"matrix.perm", "matrix.sign_s"}


def test_shape_errors():
    with pytest.raises(ValueError, match="InvertibleLinear"):
        InvertibleLinear(3)(torch.randn(2, 4))
    with pytest.raises(ValueError, match="Conv1x1"):
        Conv1x1(3)(torch.randn(2, 4, 2, 2))


# ---- ActNorm ------------------------------------------------------------------------------------------------------


def test_actnorm_first_batch_has_zero_mean_unit_variance_per_channel():
    a = ActNorm(3)
    assert not a.initialized
    x = torch.randn(16, 3, 5, 5, generator=_g()) * torch.tensor([0.5, 2.0, 7.0]).view(1, 3, 1, 1) + 3.0
    z, ld = a(x)
    assert bool(a.initialized)
    assert torch.allclose(z.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.var((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    # log-det counts the 25 positions of each channel: -25 * sum(log std)
    want = -25 * 0.5 * torch.log(x.var((0, 2, 3), unbiased=False)).sum()
    assert torch.allclose(ld, want.expand(16), rtol=1e-4)


def test_actnorm_vectors_and_constant_feature():
    a = ActNorm(2)
    x = torch.stack([torch.randn(10, generator=_g()) * 4 - 1, torch.full((10,), 2.0)], 1)
    z, ld = a(x)
    assert torch.isfinite(z).all() and torch.isfinite(ld).all()  # the eps guard on the constant feature
    assert torch.allclose(z[:, 0].mean(), torch.tensor(0.0), atol=1e-5)
    assert torch.allclose(z[:, 0].var(unbiased=False), torch.tensor(1.0), atol=1e-4)
    assert torch.allclose(z[:, 1], torch.zeros(10))


def test_actnorm_initialises_once_and_not_after_reload():
    a = ActNorm(2)
    a(torch.randn(32, 2, 3, 3, generator=_g()) * 3)
    state = {k: v.clone() for k, v in a.state_dict().items()}
    a(torch.randn(32, 2, 3, 3, generator=_g(1)) * 10 + 5)  # a second batch: no re-initialisation
    assert torch.equal(a.loc, state["loc"]) and torch.equal(a.log_scale, state["log_scale"])

    b = ActNorm(2)
    b.load_state_dict(state)
    assert bool(b.initialized)
    b(torch.randn(32, 2, 3, 3, generator=_g(2)) * 10 + 5)  # training mode, but loaded: kept
    assert torch.equal(b.loc, state["loc"]) and torch.equal(b.log_scale, state["log_scale"])


def test_actnorm_eval_mode_does_not_initialise_and_initialize_is_public():
    a = ActNorm(3).eval()
    x = torch.randn(8, 3, generator=_g()) * 5
    z, ld = a(x)
    assert not a.initialized and torch.equal(z, x) and torch.equal(ld, torch.zeros(8))
    a.initialize(x)
    z, _ = a(x)
    assert bool(a.initialized) and torch.allclose(z.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(a.inverse(z)[0], x, atol=1e-5)


# ---- BatchNormFlow ------------------------------------------------------------------------------------------------


def test_batchnorm_training_uses_batch_statistics_and_updates_running_averages():
    bn = BatchNormFlow(3, momentum=0.1, eps=1e-5).double()
    x = torch.randn(20, 3, 4, 4, generator=_g(), dtype=F64) * 3 + 2
    z, ld = bn(x)
    mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
    assert torch.allclose(z.mean((0, 2, 3)), torch.zeros(3, dtype=F64), atol=1e-10)
    assert torch.allclose(ld, (-16 * 0.5 * torch.log(var + 1e-5).sum()).expand(20))
    n = 20 * 16
    assert torch.allclose(bn.running_mean, 0.1 * mean)
    assert torch.allclose(bn.running_var, 0.9 + 0.1 * var * n / (n - 1))


def test_batchnorm_eval_uses_running_statistics_and_round_trips():
    bn = _perturb(BatchNormFlow(4).double())
    for s in range(5):  # a few training batches to move the running averages
        bn(torch.randn(64, 4, generator=_g(s), dtype=F64) * 2 + 1)
    bn.eval()
    x = torch.randn(6, 4, generator=_g(9), dtype=F64)
    z, ld = bn(x)
    gamma, rm, rv = bn.log_gamma.exp(), bn.running_mean, bn.running_var
    assert torch.allclose(z, gamma * (x - rm) / torch.sqrt(rv + bn.eps) + bn.beta)
    assert torch.allclose(ld, (bn.log_gamma - 0.5 * torch.log(rv + bn.eps)).sum().expand(6))
    assert torch.allclose(z[:1], bn(x[:1])[0])  # a per-example map in eval mode
    back, inv_ld = bn.inverse(z)
    assert torch.allclose(back, x, atol=1e-12) and torch.allclose(inv_ld, -ld)
    # the inverse uses the running statistics in training mode too: it inverts the eval-mode map
    bn.train()
    running = bn.running_mean.clone()
    assert torch.allclose(bn.inverse(z)[0], x, atol=1e-12)
    assert torch.equal(bn.running_mean, running)


def test_batchnorm_log_det_gradient_flows_through_batch_statistics():
    bn = BatchNormFlow(2)
    x = (torch.randn(16, 2, generator=_g()) * 2).requires_grad_()
    _, ld = bn(x)
    ld.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert bn.log_gamma.grad is not None and torch.allclose(bn.log_gamma.grad, torch.full((2,), 16.0))


def test_normalisation_shape_errors():
    with pytest.raises(ValueError, match="ActNorm"):
        ActNorm(3)(torch.randn(4, 2, 2, 2))
    with pytest.raises(ValueError, match="BatchNormFlow"):
        BatchNormFlow((2, 3, 3))(torch.randn(4, 2, 4, 4))
    with pytest.raises(ValueError, match="momentum"):
        BatchNormFlow(2, momentum=1.5)
    assert math.isclose(BatchNormFlow(2).eps, 1e-5)
