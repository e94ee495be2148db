"""Exact MCMC: MALA matches a known 2D Gaussian; Gibbs and Metropolis flips match an enumerated RBM."""

from __future__ import annotations

import itertools

import pytest
import torch

from deepgen.samplers import MCMCResult, gibbs, mala, mala_kernel, metropolis_flip, metropolis_flip_kernel

MU = torch.tensor([1.0, -1.0], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)  # eigenvalues 1.4 and 0.1
GAUSS = torch.distributions.MultivariateNormal(MU, COV)


def gaussian_z_scores(x: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Errors of the sample mean and covariance of n independent draws, in standard errors (see the Langevin tests)."""
    n = x.shape[0]
    se_mu = (cov.diagonal() / n).sqrt()
    se_cov = ((cov.diagonal()[:, None] * cov.diagonal()[None] + cov**2) / n).sqrt()
    return (x.mean(0) - mu) / se_mu, (torch.cov(x.T) - cov) / se_cov


def test_mala_samples_a_correlated_gaussian_exactly_where_ula_would_be_biased():
    # step 0.15 is large for the stiff direction (precision 10): unadjusted Langevin's stationary
    # covariance (P (I - eps P / 2))^-1 would be off by more than 10 standard errors there, so
    # matching COV within Monte Carlo error (4.5 SE, 4000 chains) shows the MH correction works.
    n, eps = 4000, 0.15
    with torch.no_grad():
        res = mala(
            torch.zeros(n, 2, dtype=torch.float64), GAUSS.log_prob, eps, 300, generator=torch.Generator().manual_seed(0)
        )
    assert isinstance(res, MCMCResult) and not res.x.requires_grad and res.x.shape == (n, 2)
    assert 0.3 < res.accept_rate < 0.95, res.accept_rate
    z_mu, z_cov = gaussian_z_scores(res.x, MU, COV)
    assert z_mu.abs().max() < 4.5 and z_cov.abs().max() < 4.5, (z_mu, z_cov)
    P = torch.linalg.inv(COV)
    ula_cov = torch.linalg.inv(P @ (torch.eye(2, dtype=torch.float64) - eps * P / 2))
    assert gaussian_z_scores(res.x, MU, ula_cov)[1].abs().max() > 10


def test_mala_shapes_callback_validation_and_rejection():
    steps = []
    x0 = torch.randn(8, 2, 3)
    res = mala(x0, lambda x: -(x**2).flatten(1).sum(1), 0.1, 4, callback=lambda i, x: steps.append(i))
    assert res.x.shape == x0.shape and res.x.dtype == torch.float32 and steps == [1, 2, 3, 4]
    # proposals outside the support (log_prob = -inf or NaN) are always rejected
    boxed = mala(torch.full((50, 1), 0.5), lambda x: torch.where(x[:, 0] > 0, -x[:, 0], -torch.inf), 1.0, 20)
    assert (boxed.x > 0).all() and boxed.accept_rate < 1
    with pytest.raises(ValueError, match="n_steps"):
        mala(x0, lambda x: x.sum(), 0.1, 0)
    with pytest.raises(ValueError, match=r"expected \(B,\)"):
        mala(x0, lambda x: x.sum(), 0.1, 1)


def _tiny_rbm(nv=4, nh=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(nv, nh, generator=g, dtype=torch.float64)
    b = 0.5 * torch.randn(nv, generator=g, dtype=torch.float64)
    c = 0.5 * torch.randn(nh, generator=g, dtype=torch.float64)
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=nv)), dtype=torch.float64)

    def neg_free_energy(v):  # log sum_h exp(-E(v, h)) = b.v + sum_j softplus(c_j + v W_j)
        return v @ b + torch.nn.functional.softplus(v @ W + c).sum(1)

    p_exact = torch.softmax(neg_free_energy(states), 0)
    return W, b, c, states, p_exact, neg_free_energy


def _total_variation(v: torch.Tensor, p_exact: torch.Tensor) -> float:
    idx = (v * 2 ** torch.arange(v.shape[1] - 1, -1, -1, dtype=v.dtype)).sum(1).long()  # matches itertools order
    p_hat = torch.bincount(idx, minlength=len(p_exact)).double() / v.shape[0]
    return 0.5 * (p_hat - p_exact).abs().sum().item()


def test_gibbs_matches_the_enumerated_rbm_marginal():
    # 20000 chains over 16 states: the expected total variation of the empirical histogram is about
    # 0.5 * sum_v sqrt(2 p(v) / (pi n)) < 0.012; a wrong conditional gives TV of order 0.1.
    W, b, c, states, p_exact, _ = _tiny_rbm()
    n = 20000

    def h_given_v(v, g):
        return torch.bernoulli(torch.sigmoid(v @ W + c), generator=g)

    def v_given_h(h, g):
        return torch.bernoulli(torch.sigmoid(h @ W.T + b), generator=g)

    v0 = torch.zeros(n, 4, dtype=torch.float64)
    v, h = gibbs(v0, h_given_v, v_given_h, 30, generator=torch.Generator().manual_seed(0))
    assert v.shape == (n, 4) and h.shape == (n, 3)
    assert _total_variation(v, p_exact) < 0.025
    # the sampler is exercising the conditionals: a wrong v|h (transposed bias sign) is far off
    bad, _ = gibbs(
        v0,
        h_given_v,
        lambda h, g: torch.bernoulli(torch.sigmoid(h @ W.T - b), generator=g),
        30,
        generator=torch.Generator().manual_seed(0),
    )
    assert _total_variation(bad, p_exact) > 0.05
    again, _ = gibbs(v0, h_given_v, v_given_h, 30, generator=torch.Generator().manual_seed(0))
    assert torch.equal(v, again)
    with pytest.raises(ValueError, match="k must"):
        gibbs(v0, h_given_v, v_given_h, 0)


def test_metropolis_flip_matches_the_enumerated_rbm_marginal():
    *_, p_exact, neg_free_energy = _tiny_rbm(seed=1)
    res = metropolis_flip(
        torch.zeros(20000, 4, dtype=torch.float64), neg_free_energy, 20, generator=torch.Generator().manual_seed(0)
    )
    assert _total_variation(res.x, p_exact) < 0.025 and 0 < res.accept_rate < 1


def test_ais_kernels_follow_the_geometric_path():
    # at b = 1 the kernel targets f1 alone, at b = 0 f0 alone: check each against enumeration
    *_, p1, log_f1 = _tiny_rbm(seed=2)

    def log_f0(v):  # uniform
        return torch.zeros(v.shape[0], dtype=torch.float64)

    kernel = metropolis_flip_kernel(log_f0, log_f1, n_sweeps=20)
    g = torch.Generator().manual_seed(0)
    assert _total_variation(kernel(torch.zeros(20000, 4, dtype=torch.float64), 1.0, g), p1) < 0.025
    # a flat target: Metropolis acceptance would flip every bit each sweep and return to the start
    uniform = torch.full((16,), 1 / 16, dtype=torch.float64)
    assert _total_variation(kernel(torch.zeros(20000, 4, dtype=torch.float64), 0.0, g), uniform) < 0.025
    # MALA kernel at b = 0.5 between N(0, I) and N(MU, COV): the target is the Gaussian product
    mk = mala_kernel(
        torch.distributions.MultivariateNormal(
            torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)
        ).log_prob,
        GAUSS.log_prob,
        0.1,
        n_sub=300,
    )
    with torch.no_grad():
        x = mk(torch.zeros(4000, 2, dtype=torch.float64), 0.5, g)
    P = 0.5 * torch.eye(2, dtype=torch.float64) + 0.5 * torch.linalg.inv(COV)
    cov = torch.linalg.inv(P)
    z_mu, z_cov = gaussian_z_scores(x, cov @ (0.5 * torch.linalg.inv(COV) @ MU), cov)
    assert z_mu.abs().max() < 4.5 and z_cov.abs().max() < 4.5, (z_mu, z_cov)


def test_mcmc_samplers_are_reproducible_from_a_generator():
    *_, neg_free_energy = _tiny_rbm()

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return (
            mala(torch.zeros(16, 2, dtype=torch.float64), GAUSS.log_prob, 0.1, 10, generator=g).x,
            metropolis_flip(torch.zeros(16, 4, dtype=torch.float64), neg_free_energy, 3, generator=g).x,
        )

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not any(torch.equal(u, v) for u, v in zip(a, c))
