"""Likelihood metrics: units, exact densities normalise, IS and AIS converge to enumerated values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from deepgen.data import DataInfo
from deepgen.distributions import categorical_log_prob, discretized_logistic_log_prob
from deepgen.metrics.likelihood import (
    ais_log_partition,
    bits_per_dim,
    logmeanexp_with_stderr,
    summarize_nll,
)
from deepgen.samplers import mala_kernel, metropolis_flip_kernel
from deepgen.train import build_model


def test_bits_per_dim_units():
    # a uniform distribution over 256 levels in each of 784 dims has exactly 8 bits/dim
    nll = 784 * math.log(256)
    assert bits_per_dim(nll, 784) == pytest.approx(8.0)
    s = summarize_nll(torch.full((10,), -nll), "exact", "exact", num_dims=784, discrete=True)
    assert s.bpd == pytest.approx(8.0) and s.nll == pytest.approx(nll)
    c = summarize_nll(torch.full((10,), -2.0), "exact", "exact", num_dims=2, discrete=False, log_scale=1.5)
    assert c.bpd is None and c.nll == pytest.approx(3.5)  # raw units add the standardisation log-det


def test_logmeanexp_is_stable_and_its_stderr_matches_the_delta_method():
    lw = torch.tensor([[1000.0, 1000.0, 1000.0]])
    est, se = logmeanexp_with_stderr(lw)
    assert est.item() == pytest.approx(1000.0) and se.item() == pytest.approx(0.0)
    w = torch.rand(1, 1000, generator=torch.Generator().manual_seed(0)).double() + 0.5
    est, se = logmeanexp_with_stderr(w.log())
    assert est.item() == pytest.approx(math.log(w.mean().item()))
    assert se.item() == pytest.approx((w.std() / w.mean() / math.sqrt(1000)).item(), rel=1e-6)


def test_exact_2d_densities_integrate_to_one(moons):
    for name, opts in (("independent", {}), ("gmm", {"components": 3})):
        model = build_model(name, moons.info, opts, seed=0)
        model.initialize(moons.train.x[:256])
        xs = torch.linspace(-12, 12, 801)
        gx, gy = torch.meshgrid(xs, xs, indexing="xy")
        pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
        with torch.no_grad():
            total = torch.exp(model.log_prob(pts).double()).sum().item() * (xs[1] - xs[0]).item() ** 2
        assert total == pytest.approx(1.0, abs=2e-3), name


def test_discrete_exact_models_sum_to_one_by_enumeration():
    levels, d = 3, 3
    info = DataInfo("tiny", (d,), levels)
    model = build_model("independent", info, seed=0)
    with torch.no_grad():
        model.logits.copy_(torch.randn_like(model.logits))
        states = torch.tensor(list(itertools.product(range(levels), repeat=d)), dtype=torch.float32) / (levels - 1)
        assert torch.exp(model.log_prob(states).double()).sum().item() == pytest.approx(1.0, abs=1e-6)
    for L in (2, 17, 256):
        x = (torch.arange(L, dtype=torch.float64) / (L - 1)).view(L, 1)
        p = torch.exp(discretized_logistic_log_prob(torch.full_like(x, 0.3), torch.full_like(x, -2.0), x, L))
        assert p.sum().item() == pytest.approx(1.0, abs=1e-6), L
        logits = torch.randn(L, L, 1, dtype=torch.float64)[:1].expand(L, L, 1)
        assert torch.exp(categorical_log_prob(logits, x, L)).sum().item() == pytest.approx(1.0, abs=1e-9)


def test_importance_sampling_converges_to_the_exact_marginal():
    """A linear-Gaussian VAE (probabilistic PCA) has log p(x) in closed form: N(b, W W^T + diag s^2)."""
    info = DataInfo("toy", (3,))
    vae = build_model("vae", info, {"latent_dim": 2, "hidden": ()}, seed=0)  # shared std: pPCA
    with torch.no_grad():
        vae.log_std.fill_(-0.5)
        W, b = vae.decoder[0].weight.double(), vae.decoder[0].bias.double()
        psi_inv = torch.diag(torch.exp(-2 * vae.log_std.double()))
        cov = W @ W.T + torch.linalg.inv(psi_inv)
        # proposal q(z|x): the exact posterior mean, and twice its marginal variances (heavier tails)
        m_inv = torch.linalg.inv(torch.eye(2, dtype=torch.float64) + W.T @ psi_inv @ W)
        enc = vae.encoder[0]
        A = m_inv @ W.T @ psi_inv
        enc.weight.zero_()
        enc.weight[:2] = A.float()
        enc.bias[:2] = (-A @ b).float()
        enc.bias[2:] = torch.log(2 * torch.diagonal(m_inv)).float()
        x = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
        exact = torch.distributions.MultivariateNormal(b, cov).log_prob(x.double())
        torch.manual_seed(0)
        elbo = vae.log_importance_weights(x, 20_000).double().mean(1)  # E_q[log w], the expected ELBO
        est, se = vae.log_prob_estimate(x, k=20_000)
    assert (elbo < exact).all()  # the ELBO is a lower bound
    assert torch.allclose(est, exact, atol=0.01), est - exact
    assert (torch.abs(est - exact) < 5 * se + 1e-3).all()


def test_dequantisation_estimate_converges_to_the_bin_mass():
    """A Gaussian on 5-level data: P(k) is the Gaussian mass of the bin [k/L, (k+1)/L)."""
    info = DataInfo("tiny", (2,), 5)
    model = build_model("independent", info, {"likelihood": "gaussian"}, seed=0)
    with torch.no_grad():
        model.mean.copy_(torch.tensor([0.3, 0.6]))
        model.log_std.copy_(torch.tensor([-1.5, -2.0]))
    x = torch.tensor([[0.0, 0.5], [0.25, 0.75], [1.0, 1.0]])
    normal = torch.distributions.Normal(model.mean.double(), model.log_std.double().exp())
    k = torch.round(x.double() * 4)
    exact = torch.log(normal.cdf((k + 1) / 5) - normal.cdf(k / 5)).sum(1)
    torch.manual_seed(0)
    with torch.no_grad():
        bound = model.log_likelihood(x, k=1)
        est = model.log_likelihood(x, k=4000)
    assert bound.kind.value == "lower bound" and est.kind.value == "estimate"
    assert torch.allclose(est.values.double(), exact, atol=0.05)
    assert (torch.abs(est.values.double() - exact) < 4 * est.stderr + 1e-3).all()
    assert bound.values.double().mean() < exact.mean() + 0.1


def _rbm(seed=0, nv=6, nh=3):
    g = torch.Generator().manual_seed(seed)
    W, b, c = (
        torch.randn(nv, nh, generator=g, dtype=torch.float64),
        torch.randn(nv, generator=g, dtype=torch.float64) * 0.5,
        torch.randn(nh, generator=g, dtype=torch.float64) * 0.5,
    )

    def log_f(v):  # -free energy: b.v + sum_j softplus(c_j + v W_j)
        v = v.double()
        return v @ b + torch.nn.functional.softplus(v @ W + c).sum(1)

    return log_f, b, nv


def test_ais_converges_to_the_enumerated_rbm_partition_function():
    log_f1, b, nv = _rbm()
    states = torch.tensor(list(itertools.product([0, 1], repeat=nv)), dtype=torch.float64)
    log_z_exact = torch.logsumexp(log_f1(states), 0).item()
    p0 = torch.sigmoid(b)

    def log_f0(v):  # normalised base: independent Bernoulli(sigmoid(b))
        v = v.double()
        return (v * torch.log(p0) + (1 - v) * torch.log1p(-p0)).sum(1)

    def sample_f0(n, g):
        return torch.bernoulli(p0.expand(n, nv), generator=g)

    kernel = metropolis_flip_kernel(log_f0, log_f1)
    est, se = ais_log_partition(
        log_f0,
        sample_f0,
        log_f1,
        kernel,
        n_chains=200,
        n_steps=300,
        generator=torch.Generator().manual_seed(0),
    )
    assert abs(est - log_z_exact) < max(4 * se, 0.02), (est, log_z_exact, se)


def test_ais_with_mala_on_a_continuous_unnormalised_density():
    mus = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]], dtype=torch.float64)
    w, s = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64), 0.6

    def log_f1(x):  # unnormalised mixture: Z = sum_k w_k 2 pi s^2 = 2 pi s^2
        d = ((x.double().unsqueeze(1) - mus) ** 2).sum(-1)
        return torch.logsumexp(torch.log(w) - d / (2 * s * s), 1)

    def log_f0(x):  # N(0, 3^2 I), normalised
        return torch.distributions.Normal(0.0, 3.0).log_prob(x.double()).sum(1)

    def sample_f0(n, g):
        return 3 * torch.randn(n, 2, generator=g, dtype=torch.float64)

    est, se = ais_log_partition(
        log_f0,
        sample_f0,
        log_f1,
        mala_kernel(log_f0, log_f1, 0.05, 2),
        n_chains=200,
        n_steps=400,
        generator=torch.Generator().manual_seed(0),
    )
    exact = math.log(2 * math.pi * s * s)
    assert abs(est - exact) < max(4 * se, 0.05), (est, exact, se)
    assert np.isfinite(se) and se > 0
