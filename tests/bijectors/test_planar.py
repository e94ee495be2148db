"""Planar and radial flows: the paper's formulas, the invertibility constraints, the inverses, large inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deepgen.bijectors.planar import Planar, Radial

D64 = torch.float64


def _g(seed):
    return torch.Generator().manual_seed(seed)


def _planar(u, w, b, dtype=D64):
    f = Planar(len(u)).to(dtype)
    with torch.no_grad():
        f.u.copy_(torch.as_tensor(u, dtype=dtype))
        f.w.copy_(torch.as_tensor(w, dtype=dtype))
        f.b.fill_(b)
    return f


def _radial(x0, alpha_raw, beta_raw, dtype=D64):
    f = Radial(len(x0)).to(dtype)
    with torch.no_grad():
        f.x0.copy_(torch.as_tensor(x0, dtype=dtype))
        f.alpha_raw.fill_(alpha_raw)
        f.beta_raw.fill_(beta_raw)
    return f


def test_planar_matches_the_paper():
    gen = _g(0)
    u, w = torch.randn(4, generator=gen, dtype=D64), torch.randn(4, generator=gen, dtype=D64)
    f = _planar(u, w, 0.3)
    x = torch.randn(6, 4, generator=gen, dtype=D64)
    wu = w @ u
    u_hat = u + (-1 + F.softplus(wu) - wu) * w / (w @ w)  # appendix A
    s = x @ w + 0.3
    z, ld = f(x)
    assert torch.allclose(z, x + torch.tanh(s)[:, None] * u_hat)  # eq. 10
    psi = (1 - torch.tanh(s) ** 2)[:, None] * w  # eq. 11
    assert torch.allclose(ld, torch.log((1 + psi @ u_hat).abs()))  # eq. 12


@pytest.mark.parametrize("wu", [-1e4, -100.0, -3.0, 0.0, 50.0])
def test_planar_constraint_holds_for_adversarial_u(wu):
    w = torch.tensor([0.7, -1.2, 0.1], dtype=D64)
    u = wu * w / (w @ w) + torch.tensor([0.5, 0.2, -3.0], dtype=D64).cross(w, dim=0)  # wᵀu = wu
    f = _planar(u, w, -0.4)
    assert torch.isclose(w @ u, torch.tensor(wu, dtype=D64))
    # wᵀû = m(wᵀu) = -1 + softplus(wᵀu) >= -1, up to the rounding of the dot product
    assert torch.isclose(f.w @ f.u_hat(), -1 + F.softplus(w @ u), rtol=0, atol=1e-14 * max(1, abs(wu)))
    assert (-1 + F.softplus(w @ u)).item() >= -1
    x = torch.randn(64, 3, generator=_g(1), dtype=D64) * 3
    z, ld = f(x)
    assert torch.isfinite(ld).all()
    assert torch.allclose(f.inverse(z)[0], x, atol=1e-9)
    if wu >= -3:  # the map is a bijection: a positive Jacobian determinant everywhere
        jac = torch.stack([torch.autograd.functional.jacobian(lambda v: f(v[None])[0][0], xi) for xi in x])
        assert (torch.linalg.det(jac) > 0).all()
        assert torch.allclose(ld, torch.linalg.slogdet(jac).logabsdet)


def test_planar_with_zero_w_is_the_constant_shift():
    f = _planar([1.0, 2.0], [0.0, 0.0], 0.5)
    x = torch.randn(3, 2, dtype=D64)
    z, ld = f(x)
    assert torch.allclose(z, x + torch.tanh(torch.tensor(0.5, dtype=D64)) * torch.tensor([1.0, 2.0], dtype=D64))
    assert torch.allclose(ld, torch.zeros(3, dtype=D64))
    assert torch.allclose(f.inverse(z)[0], x)


@pytest.mark.parametrize("seed", range(4))
def test_planar_bisection_inverse_is_exact(seed):
    gen = _g(seed)
    scale = [0.3, 1.0, 5.0, 20.0][seed]
    u, w = torch.randn(5, generator=gen, dtype=D64) * scale, torch.randn(5, generator=gen, dtype=D64) * scale
    f = _planar(u, w, float(torch.randn((), generator=gen, dtype=D64)) * scale)
    x = torch.randn(50, 5, generator=gen, dtype=D64) * 3
    z, ld = f(x)
    x2, ild = f.inverse(z)
    assert (x2 - x).abs().max() < 1e-10
    assert (ild + ld).abs().max() < 1e-10
    assert not x2.requires_grad and not ild.requires_grad  # numerical inverse: no gradients


def test_radial_matches_the_paper():
    gen = _g(2)
    x0 = torch.randn(3, generator=gen, dtype=D64)
    f = _radial(x0, 0.2, -0.7)
    alpha, beta = f.alpha_beta()
    assert alpha > 0 and beta > -alpha
    x = torch.randn(8, 3, generator=gen, dtype=D64)
    r = (x - x0).norm(dim=1)
    h = 1 / (alpha + r)
    z, ld = f(x)
    assert torch.allclose(z, x + (beta * h)[:, None] * (x - x0))  # eq. 13
    dh = -1 / (alpha + r) ** 2
    assert torch.allclose(ld, 2 * torch.log(1 + beta * h) + torch.log(1 + beta * h + beta * dh * r))  # eq. 14


@pytest.mark.parametrize("beta_raw", [-8.0, -1.0, 0.0, 2.0, 10.0])
def test_radial_inverse_is_exact(beta_raw):
    gen = _g(3)
    x0 = torch.randn(4, generator=gen, dtype=D64)
    f = _radial(x0, -0.5, beta_raw)
    near = x0 + 1e-9 * torch.randn(3, 4, generator=gen, dtype=D64)
    x = torch.cat([torch.randn(20, 4, generator=gen, dtype=D64) * 2, near, x0[None], x0[None] + 1e6])
    z, ld = f(x)
    x2, ild = f.inverse(z)
    assert torch.allclose(x2, x, rtol=1e-12, atol=1e-12)
    assert torch.allclose(ild, -ld, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("make", [lambda: Planar(3), lambda: Radial(3)], ids=["planar", "radial"])
@pytest.mark.parametrize("big", [1e6, 1e20, 1e30])
def test_no_nan_for_large_inputs_in_float32(make, big):
    torch.manual_seed(0)
    f = make()
    x = torch.randn(16, 3, generator=_g(4)) * big
    z, ld = f(x)
    assert torch.isfinite(z).all() and torch.isfinite(ld).all()
    x2, ild = f.inverse(z)
    assert torch.isfinite(x2).all() and torch.isfinite(ild).all()
    assert torch.allclose(x2, x, rtol=1e-5)


def test_vectors_only():
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        Planar(3)(torch.zeros(2, 3, 1))
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        Radial(3).inverse(torch.zeros(2, 4))


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    for f in (Planar(3), Radial(3)):
        z, ld = f(torch.randn(8, 3))
        (z.square().sum() - ld.sum()).backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in f.parameters())
