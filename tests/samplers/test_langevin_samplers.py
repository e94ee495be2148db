"""Langevin samplers: ULA matches a known correlated 2D Gaussian, annealed Langevin recovers mixture weights."""

from __future__ import annotations

import math

import pytest
import torch

from deepgen.samplers import annealed_langevin, langevin, score_from_log_prob

MU = torch.tensor([1.0, -1.0], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)  # eigenvalues 1.4 and 0.1
GAUSS = torch.distributions.MultivariateNormal(MU, COV)


def gaussian_z_scores(x: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Errors of the sample mean and covariance of n independent draws, in units of their standard errors.

    SE(mean_i) = sqrt(S_ii / n); SE(cov_ij) = sqrt((S_ii S_jj + S_ij^2) / n) for Gaussian draws.
    """
    n = x.shape[0]
    se_mu = (cov.diagonal() / n).sqrt()
    se_cov = ((cov.diagonal()[:, None] * cov.diagonal()[None] + cov**2) / n).sqrt()
    return (x.mean(0) - mu) / se_mu, (torch.cov(x.T) - cov) / se_cov


def test_langevin_samples_a_correlated_gaussian_under_no_grad():
    # 4000 independent chains from a point far off, eps = 0.005 for 2000 steps: the slowest mode
    # (precision eigenvalue 0.714) relaxes as exp(-0.714 * 10) ~ 1e-3, so the chains have mixed.
    # ULA's stationary covariance for a Gaussian is exactly (P (I - eps P / 2))^-1; its bias here is
    # below 0.3 standard errors, so the tolerance is Monte Carlo error alone: 4.5 standard errors.
    n, eps = 4000, 0.005
    score = score_from_log_prob(GAUSS.log_prob)
    with torch.no_grad():  # the CLI samples under no_grad: the score must still get its gradient
        x = langevin(
            torch.zeros(n, 2, dtype=torch.float64), score, eps, 2000, generator=torch.Generator().manual_seed(0)
        )
    assert not x.requires_grad and x.dtype == torch.float64 and x.shape == (n, 2)
    P = torch.linalg.inv(COV)
    ula_cov = torch.linalg.inv(P @ (torch.eye(2, dtype=torch.float64) - eps * P / 2))
    z_mu, z_cov = gaussian_z_scores(x, MU, ula_cov)
    assert z_mu.abs().max() < 4.5 and z_cov.abs().max() < 4.5, (z_mu, z_cov)
    assert gaussian_z_scores(x, MU, COV)[1].abs().max() < 4.5  # and the target itself
    # the test can fail: the noise of a wrong sqrt(eps) (not sqrt(2 eps)) would halve the covariance
    assert gaussian_z_scores(x / math.sqrt(2), MU / math.sqrt(2), COV)[1].abs().max() > 10


def test_score_from_log_prob_under_no_grad_and_inference_mode():
    x = torch.randn(5, 2, dtype=torch.float64)
    expected = -(x - MU) @ torch.linalg.inv(COV)
    for ctx in (torch.no_grad, torch.inference_mode, torch.enable_grad):
        with ctx():
            g = score_from_log_prob(GAUSS.log_prob)(x)
        assert torch.allclose(g, expected, atol=1e-12) and not g.requires_grad, ctx
    lin = torch.nn.Linear(2, 1).double()

    def log_prob(z):
        return -(lin(z).squeeze(1) ** 2)

    score_from_log_prob(log_prob)(x)
    assert lin.weight.grad is None  # the score must not leave gradients in the model's parameters
    with pytest.raises(ValueError, match=r"expected \(B,\)"):
        score_from_log_prob(lambda z: z**2)(x)


def test_langevin_options_shapes_and_validation():
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(6, 1, 3, 3)  # any (B, ...) shape; float32 is kept
    steps = []
    x = langevin(
        x0,
        lambda x: -x * 100,
        0.01,
        5,
        noise_scale=0.5,
        clip_grad=0.5,
        clamp=(0.0, 1.0),
        generator=g,
        callback=lambda i, x: steps.append((i, x.shape)),
    )
    assert x.shape == x0.shape and x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1
    assert steps == [(i, x0.shape) for i in range(1, 6)]
    # clip_grad bounds the drift: with no noise a step moves at most eps * clip_grad
    moved = langevin(torch.full((3, 2), 5.0), lambda x: -x, 0.1, 1, noise_scale=0.0, clip_grad=0.5)
    assert torch.allclose(moved, torch.full((3, 2), 5.0 - 0.05))
    with pytest.raises(ValueError, match="step_size"):
        langevin(x0, lambda x: -x, 0.0, 5)
    with pytest.raises(ValueError, match="n_steps"):
        langevin(x0, lambda x: -x, 0.1, 0)
    with pytest.raises(ValueError, match="score returned shape"):
        langevin(x0, lambda x: x.flatten(1), 0.1, 2)


def _mixture_score(mus: torch.Tensor, w: torch.Tensor, s: float):
    """Noise-conditional score of sum_k w_k N(mu_k, s^2 I) convolved with N(0, sigma^2 I)."""

    def score(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        var = (s**2 + sigma**2).view(-1, 1, 1)
        diff = mus.unsqueeze(0) - x.unsqueeze(1)  # (B, K, 2)
        logits = torch.log(w).view(1, -1, 1) - (diff**2).sum(-1, keepdim=True) / (2 * var)
        return (torch.softmax(logits, 1) * diff / var).sum(1)

    return score


def test_annealed_langevin_recovers_mixture_modes_and_weights():
    # Two well-separated modes with weights 0.25 / 0.75: plain Langevin from a uniform start keeps
    # each chain in its starting basin (weights ~0.5 / 0.5); annealing lets chains redistribute.
    mus = torch.tensor([[-3.0, 2.0], [3.0, -2.0]], dtype=torch.float64)
    w, s, n = torch.tensor([0.25, 0.75], dtype=torch.float64), 0.5, 2000
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(n, 2, generator=g, dtype=torch.float64) * 16 - 8
    sigmas = torch.logspace(math.log10(8.0), -1.0, 10)  # 8 -> 0.1; alpha_i / sigma_i^2 = eps / sigma_L^2 = 0.2
    score = _mixture_score(mus, w, s)
    x = annealed_langevin(x0, score, sigmas, 100, 2e-3, generator=g)
    assert not x.requires_grad and x.shape == (n, 2)
    nearest = torch.cdist(x, mus).argmin(1)
    assert torch.cdist(x, mus).min(1).values.max() < 6 * s  # every sample sits on a mode
    frac = (nearest == 0).double().mean().item()
    assert abs(frac - 0.25) < 4 * math.sqrt(0.25 * 0.75 / n), frac  # weights within 4 SE
    for k in range(2):
        xk = x[nearest == k]
        assert (xk.mean(0) - mus[k]).abs().max() < 4 * s / math.sqrt(len(xk))
        # Tweedie's final step shrinks the std from sqrt(s^2 + 0.1^2) to s^2 / sqrt(s^2 + 0.1^2) = 0.490
        assert xk.std(0).sub(0.490).abs().max() < 0.05, xk.std(0)
    plain = langevin(x0, lambda x: score(x, torch.full((n,), 1e-3, dtype=x.dtype)), 2e-2, 500, generator=g)
    plain_frac = (torch.cdist(plain, mus).argmin(1) == 0).double().mean().item()
    assert abs(plain_frac - 0.25) > 0.15  # the failure annealing fixes, so the check above is meaningful


def test_samplers_are_reproducible_from_a_generator():
    x0 = torch.zeros(16, 2, dtype=torch.float64)
    score = score_from_log_prob(GAUSS.log_prob)

    def run(seed):
        a = langevin(x0, score, 0.01, 20, generator=torch.Generator().manual_seed(seed))
        b = annealed_langevin(
            x0,
            lambda x, s: -x / (1 + s[:, None] ** 2),
            [1.0, 0.5],
            5,
            0.01,
            generator=torch.Generator().manual_seed(seed),
        )
        return a, b

    (a1, b1), (a2, b2), (a3, b3) = run(0), run(0), run(1)
    assert torch.equal(a1, a2) and torch.equal(b1, b2)
    assert not torch.equal(a1, a3) and not torch.equal(b1, b3)
    with pytest.raises(ValueError, match="decreasing"):
        annealed_langevin(x0, lambda x, s: -x, [0.5, 1.0], 5, 0.01)
