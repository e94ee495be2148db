"""EmergingConv: triangular factors, log-det vs autograd, exact inverse, a true k x k receptive field, speed."""

from __future__ import annotations

import time

import pytest
import torch

from deepgen.bijectors.emerging import EmergingConv

F64 = torch.float64


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _perturbed(c: int, k: int = 3, scale: float = 0.3, seed: int = 0) -> EmergingConv:
    f = EmergingConv(c, k, seed=seed).double()
    g = _g(seed + 1)
    with torch.no_grad():
        for p in f.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=F64) * scale)
    return f


def _jacobian(fn, x: torch.Tensor) -> torch.Tensor:
    """(D, D) Jacobian of one example, in raster x channel order (pixel-major, channel-minor)."""
    c, h, w = x.shape

    def flat(v):
        img = v.reshape(1, h, w, c).permute(0, 3, 1, 2)
        return fn(img).permute(0, 2, 3, 1).reshape(-1)

    return torch.autograd.functional.jacobian(flat, x.permute(1, 2, 0).reshape(-1))


def _factor(f: EmergingConv, which: int):
    """One factor of the chain, as a function of images (the forward's two convolutions)."""
    k1, k2 = f.kernels()
    p = f.m - 1
    pad, k = ((p, 0, p, 0), k1) if which == 1 else ((0, p, 0, p), k2)
    return lambda x: torch.nn.functional.conv2d(torch.nn.functional.pad(x, pad), k)


@pytest.mark.parametrize("k", [3, 5])
def test_each_factor_is_triangular_with_the_centre_diagonal(k):
    f = _perturbed(3, k)
    x = torch.randn(3, 4, 5, generator=_g(), dtype=F64)
    j1, j2 = _jacobian(_factor(f, 1), x), _jacobian(_factor(f, 2), x)
    assert torch.equal(j1, torch.tril(j1)) and torch.equal(j2, torch.triu(j2))
    assert torch.allclose(torch.diagonal(j1), f.log_diag1.exp().repeat(20))
    assert torch.allclose(torch.diagonal(j2), f.log_diag2.exp().repeat(20))


def test_log_det_matches_autograd_on_a_small_image():
    f = _perturbed(2, 3, scale=0.5)
    x = torch.randn(2, 2, 4, 3, generator=_g(), dtype=F64)
    z, ld = f(x)
    for i in range(2):
        jac = _jacobian(lambda v: f(v)[0], x[i])
        assert torch.allclose(ld[i], torch.linalg.slogdet(jac)[1], atol=1e-10)
    assert torch.allclose(ld, (12 * (f.log_diag1.sum() + f.log_diag2.sum())).expand(2))
    # the composed map is a convolution, but not a triangular one: the chain mixes both orders
    jac = _jacobian(lambda v: f(v)[0], x[0])
    assert not torch.allclose(jac, torch.tril(jac)) and not torch.allclose(jac, torch.triu(jac))


@pytest.mark.parametrize("shape", [(3, 4, 14, 14), (2, 16, 7, 7), (2, 3, 5, 9)])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_inverse_is_exact_in_float64(shape, k):
    f = _perturbed(shape[1], k, scale=0.1)
    x = torch.randn(shape, generator=_g(1), dtype=F64)
    z, ld = f(x)
    back, inv_ld = f.inverse(z)
    assert (back - x).abs().max() < 1e-10
    assert torch.allclose(inv_ld, -ld)
    assert (f(f.inverse(x)[0])[0] - x).abs().max() < 1e-10


@pytest.mark.parametrize("k", [3, 5])
def test_receptive_field_is_the_full_k_by_k_neighbourhood(k):
    f = _perturbed(2, k)
    h = w = 9
    x = torch.randn(1, 2, h, w, dtype=F64, requires_grad=True)
    z, _ = f(x)
    z[0, 0, 4, 4].backward()  # one output at the centre of the image
    reads = x.grad[0].abs().sum(0) > 0  # (H, W): which input pixels it depends on
    r = k // 2
    want = torch.zeros(h, w, dtype=torch.bool)
    want[4 - r : 4 + r + 1, 4 - r : 4 + r + 1] = True
    assert torch.equal(reads, want)  # every pixel of the k x k window, none outside: not a 1x1 conv


def test_inverse_cache_in_eval_mode_follows_parameter_changes():
    f = _perturbed(2, 3).eval()
    x = torch.randn(2, 2, 5, 6, generator=_g(), dtype=F64)
    with torch.no_grad():
        assert (f.inverse(f(x)[0])[0] - x).abs().max() < 1e-10
        cached = f._cache
        assert cached is not None
        f.inverse(f(x)[0])
        assert f._cache is cached  # reused
        f.weight2.add_(0.2)  # an in-place update (an optimiser step, load_state_dict)
        assert (f.inverse(f(x)[0])[0] - x).abs().max() < 1e-10
        assert f._cache is not cached
        f.inverse(torch.randn(2, 2, 5, 4, dtype=F64))  # another width: rebuilt
        assert f._cache[0][0] == 4
    f.train()
    f.inverse(f(x)[0])
    assert f._cache is None  # training mode: no cache


def test_inverse_is_differentiable_in_the_parameters():
    f = EmergingConv(2, seed=3)
    z = torch.randn(2, 2, 4, 4, generator=_g())
    x, _ = f.inverse(z)
    x.pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in f.parameters())


@pytest.mark.parametrize("shape", [(64, 4, 14, 14), (64, 16, 7, 7)])
def test_inverse_is_fast_at_mnist_shapes(shape):
    f = EmergingConv(shape[1], seed=1).eval()
    z = torch.randn(shape, generator=_g())
    with torch.no_grad():
        f.inverse(z)  # warm-up (and cache)
        t0 = time.perf_counter()
        f._cache = None  # time the uncached path: building the row matrices and solving
        x, _ = f.inverse(z)
        elapsed = time.perf_counter() - t0
    assert elapsed < 0.5, f"inverse of {shape} took {elapsed:.3f} s"
    assert torch.allclose(f(x)[0], z, atol=1e-4)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="odd"):
        EmergingConv(2, 4)
    with pytest.raises(ValueError, match="EmergingConv"):
        EmergingConv(2)(torch.randn(1, 3, 4, 4))
    a, b = EmergingConv(3, seed=5), EmergingConv(3, seed=5)
    assert torch.equal(a.weight1, b.weight1) and not torch.equal(a.weight1, EmergingConv(3, seed=6).weight1)
    assert set(a.state_dict()) == {"weight1", "weight2", "log_diag1", "log_diag2"}
