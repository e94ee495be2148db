"""Diffusion schedules against closed forms, Bayes' rule, Monte Carlo and diffusers."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from deepgen.diffusion import (
    VESDE,
    VPSDE,
    DiffusionSchedule,
    SubVPSDE,
    cosine_betas,
    discretized_gaussian_log_mass,
    linear_betas,
)
from deepgen.errors import ConfigError

D = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# -- discrete schedules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, name", [("linear", "linear"), ("cosine", "squaredcos_cap_v2")])
def test_alpha_bar_matches_diffusers(kind, name):
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=name)
    ours = getattr(DiffusionSchedule, kind)(1000)
    assert (ours.alpha_bar - ref.alphas_cumprod.double()).abs().max() < 1e-6
    assert (ours.betas - ref.betas.double()).abs().max() < 1e-6  # diffusers stores float32


def test_linear_betas_scale_with_T_and_cosine_follows_its_closed_form():
    assert linear_betas(250)[0].item() == pytest.approx(4e-4) and linear_betas(250)[-1].item() == pytest.approx(0.08)
    T, s = 1000, 0.008
    ab = DiffusionSchedule.cosine(T).alpha_bar
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    closed = torch.tensor([f[t + 1] / f[0] for t in range(T)], dtype=D)  # ab of timestep t is f(t+1)/f(0)
    unclipped = cosine_betas(T) < 0.999
    assert unclipped[:-10].all() and not unclipped[-1]  # only the last steps are clipped
    first_clipped = int((~unclipped).nonzero()[0])
    assert (ab[:first_clipped] - closed[:first_clipped]).abs().max() < 1e-12
    assert cosine_betas(T).max() == 0.999


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_q_sample_matches_its_closed_form_by_monte_carlo(kind):
    sched = getattr(DiffusionSchedule, kind)(1000)
    n = 100_000
    x0 = torch.tensor([0.7, -0.4, 1.0, 0.0], dtype=D)
    for step in (0, 10, 300, 999):
        ab = math.prod(1 - b for b in sched.betas[: step + 1].tolist())  # Ho et al. eq. 4, from the betas
        x = sched.q_sample(x0.expand(n, 4), torch.full((n,), step), generator=_gen(step))
        mean_se, var = math.sqrt((1 - ab) / n), 1 - ab
        assert ((x.mean(0) - math.sqrt(ab) * x0).abs() < 5 * mean_se).all(), step
        assert ((x.var(0) - var).abs() < 5 * var * math.sqrt(2 / n)).all(), step
    noise = torch.randn(3, 2, generator=_gen())
    t = torch.tensor([5, 50, 500])
    ab = sched.alpha_bar[t].float().view(-1, 1)
    got = sched.q_sample(torch.ones(3, 2), t, noise)
    assert got.dtype == torch.float32 and torch.allclose(got, ab.sqrt() + (1 - ab).sqrt() * noise, atol=1e-6)


def test_q_posterior_is_bayes_rule_on_the_joint_of_consecutive_steps():
    # (x_{t-1}, x_t) given x0 is jointly Gaussian: x_{t-1} = sqrt(ab_{t-1}) x0 + sqrt(1 - ab_{t-1}) e1,
    # x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) e2; condition on x_t by Gaussian conditioning.
    for sched in (DiffusionSchedule.linear(1000), DiffusionSchedule.cosine(200)):
        T = sched.num_timesteps
        betas = sched.betas
        t = torch.arange(T)
        x0 = torch.linspace(-1, 1, T, dtype=D).view(T, 1)
        x_t = torch.linspace(2, -3, T, dtype=D).view(T, 1)
        ab_prev = torch.tensor([math.prod(1 - b for b in betas[:s].tolist()) for s in range(T)], dtype=D).view(T, 1)
        alpha = (1 - betas).view(T, 1)
        m1, v1 = ab_prev.sqrt() * x0, 1 - ab_prev  # x_{t-1}
        m2, v2 = alpha.sqrt() * m1, alpha * v1 + betas.view(T, 1)  # x_t
        cov = alpha.sqrt() * v1
        mean_bayes, var_bayes = m1 + cov / v2 * (x_t - m2), v1 - cov**2 / v2
        mean, var, log_var = sched.q_posterior(x0, x_t, t)
        assert (mean - mean_bayes).abs().max() < 1e-10
        assert (var - var_bayes).abs().max() < 1e-12
        assert mean[0].item() == pytest.approx(x0[0].item()) and var[0].item() == 0.0  # t = 0: the point x0
        assert torch.allclose(log_var[1:], var[1:].log()) and log_var[0] == log_var[1]  # clipped at t = 0


def test_eps_x0_and_v_parametrisations_round_trip():
    sched = DiffusionSchedule.cosine(1000)
    x0 = torch.randn(5, 1, 3, 3, generator=_gen(1), dtype=D)
    eps = torch.randn(5, 1, 3, 3, generator=_gen(2), dtype=D)
    t = torch.tensor([0, 1, 400, 998, 999])
    x_t = sched.q_sample(x0, t, eps)
    ab = sched.alpha_bar[t].view(-1, 1, 1, 1)
    v = sched.velocity(x0, eps, t)
    assert torch.allclose(v, ab.sqrt() * eps - (1 - ab).sqrt() * x0)  # Salimans & Ho's definition
    assert torch.allclose(sched.x0_from_eps(x_t, t, eps), x0, atol=1e-6)  # 1/sqrt(ab) is ~3e4 at t = 999
    assert torch.allclose(sched.eps_from_x0(x_t, t, x0), eps, atol=1e-9)
    assert torch.allclose(sched.x0_from_v(x_t, t, v), x0, atol=1e-12)
    assert torch.allclose(sched.eps_from_v(x_t, t, v), eps, atol=1e-12)
    # p(x_{t-1} | x_t) with the true noise is the true posterior; "large" uses beta_t
    mean, var, _ = sched.p_mean_variance(x_t, t, eps)
    q_mean, q_var, _ = sched.q_posterior(x0, x_t, t)
    assert torch.allclose(mean, q_mean, atol=1e-6) and torch.allclose(var[1:], q_var[1:], rtol=1e-12)
    _, var_large, _ = sched.p_mean_variance(x_t, t, eps, variance="large")
    assert torch.allclose(var_large[1:, 0, 0, 0], sched.betas[t[1:]])


@pytest.mark.parametrize("levels", [2, 17, 256])
def test_discretized_decoder_masses_sum_to_one_over_all_levels(levels):
    lattice = -1 + 2 * torch.arange(levels, dtype=D) / (levels - 1)
    mean = torch.tensor([-1.0, -0.3, 0.0, 0.55, 1.0, 3.0, -7.0], dtype=D)
    for log_var in (-14.0, -6.0, -1.0, 0.0, 3.0):
        lv = torch.full_like(mean, log_var)
        log_mass = discretized_gaussian_log_mass(lattice.view(-1, 1), mean, lv, levels)  # (L, pixels)
        assert torch.isfinite(log_mass).all()  # tiny masses far from the mean are still resolved in logs
        assert (torch.logsumexp(log_mass, 0)).abs().max() < 1e-9, (levels, log_var)
        # each mass is the Gaussian's probability of its bin: edges halfway between lattice points
        std = math.exp(0.5 * log_var)
        edges = torch.cat(
            [torch.tensor([-math.inf], dtype=D), (lattice[1:] + lattice[:-1]) / 2, torch.tensor([math.inf], dtype=D)]
        )
        cdf = Normal(mean, std).cdf(edges.view(-1, 1))
        assert (log_mass.exp() - (cdf[1:] - cdf[:-1])).abs().max() < 1e-12


def test_discretized_decoder_is_accurate_far_in_the_tails():
    x, mean = torch.tensor([0.0], dtype=D), torch.tensor([0.5], dtype=D)
    log_var = torch.tensor([2 * math.log(0.01)], dtype=D)  # the bin [-1/16, 1/16] is 44 to 56 std below the mean
    got = discretized_gaussian_log_mass(x, mean, log_var, 17)
    expected = torch.special.log_ndtr(torch.tensor(-43.75, dtype=D))  # the upper edge's tail dominates
    assert abs(got.item() - expected.item()) < 1e-9 and got.item() < -900  # no 1e-12 floor


def test_prior_kl_and_vb_terms_match_torch_distributions():
    sched = DiffusionSchedule.linear(1000)
    x0 = torch.rand(4, 1, 2, 2, generator=_gen(3), dtype=D) * 2 - 1
    ab_T = sched.alpha_bar[-1]
    ref = kl_divergence(Normal(ab_T.sqrt() * x0, (1 - ab_T).sqrt()), Normal(0.0, 1.0)).flatten(1).sum(1)
    assert torch.allclose(sched.prior_kl(x0), ref, rtol=1e-10)
    t = torch.tensor([0, 1, 500, 999])
    x_t = sched.q_sample(x0, t, generator=_gen(4))
    mean = x_t * 0.9 + 0.01
    log_var = torch.full_like(x_t, -3.0)
    terms = sched.vb_term(x0, x_t, t, mean, log_var, 256)
    q_mean, q_var, _ = sched.q_posterior(x0, x_t, t)
    kl = kl_divergence(Normal(q_mean[1:], q_var[1:].sqrt()), Normal(mean[1:], math.exp(-1.5))).flatten(1).sum(1)
    assert torch.allclose(terms[1:], kl, rtol=1e-10)
    assert torch.allclose(terms[0], sched.decoder_nll(x0[:1], mean[:1], log_var[:1], 256)[0])
    # a late step's mean far in the decoder's tails: the KL rows' gradient stays finite (no 0 * inf)
    far = (x_t * 0 + 40.0).requires_grad_(True)
    lv = torch.full_like(x_t, -12.0).requires_grad_(True)
    sched.vb_term(x0, x_t, torch.tensor([1, 2, 500, 999]), far, lv, 256).sum().backward()
    assert torch.isfinite(far.grad).all() and torch.isfinite(lv.grad).all()


def test_variational_bound_of_the_exact_denoiser_is_close_to_the_data_entropy():
    # Two equally likely points x0 = +-1 (binary data, L = 2): -log p(x0) >= H = log 2 for any model,
    # and with T = 1000 steps and the exact E[x0 | x_t] = tanh(sqrt(ab) x_t / (1 - ab)) the bound is tight
    # to ~0.01 nats (measured 0.699 +- 0.003); with T = 100 it is visibly looser (0.746).
    def bound(sched, n):
        def p_fn(x, t):
            ab = sched.alpha_bar[t].view(-1, 1)
            eps = (x - ab.sqrt() * torch.tanh(ab.sqrt() * x / (1 - ab))) / (1 - ab).sqrt()
            mean, _, log_var = sched.p_mean_variance(x, t, eps)
            return mean, log_var

        x0 = (torch.randint(0, 2, (n, 1), generator=_gen(5)) * 2 - 1).to(D)
        terms = sched.variational_bound(x0, p_fn, 2, generator=_gen(6))
        assert terms.shape == (n, sched.num_timesteps + 1) and (terms >= -1e-12).all()
        total = terms.sum(1)
        return total.mean().item(), total.std().item() / math.sqrt(n)

    b1000, se1000 = bound(DiffusionSchedule.linear(1000), 2000)
    assert math.log(2) - 4 * se1000 < b1000 < math.log(2) + 0.025
    b100, se100 = bound(DiffusionSchedule.linear(100), 2000)
    assert b100 > b1000 + 0.02


def test_schedule_validation_is_one_line_config_errors():
    sched = DiffusionSchedule.cosine(10)
    x = torch.zeros(2, 3)
    for bad, match in [
        (lambda: DiffusionSchedule(torch.tensor([0.1, 1.0])), r"\(0, 1\)"),
        (lambda: DiffusionSchedule(torch.tensor([0.1])), "at least 2"),
        (lambda: linear_betas(1), "num_timesteps"),
        (lambda: linear_betas(10), "T >= 21"),
        (lambda: sched.q_sample(x, torch.tensor([0, 10])), r"\[0, 9\]"),
        (lambda: sched.q_sample(x, torch.tensor([0.0, 1.0])), "integer tensor"),
        (lambda: sched.q_sample(x, torch.tensor([0, 1, 2])), r"shape \(B,\)"),
        (lambda: sched.decoder_nll(x, x, x, 1), "levels"),
        (lambda: sched.p_mean_variance(x, 0, x, variance="learned"), "variance"),
        (lambda: VPSDE(beta_min=0.0), "beta_min"),
        (lambda: VESDE(sigma_min=1.0, sigma_max=0.5), "sigma_min"),
        (lambda: VPSDE().marginal_prob(x, torch.ones(3)), "shape"),
    ]:
        with pytest.raises(ConfigError, match=match) as info:
            bad()
        assert "\n" not in str(info.value)


# -- continuous-time SDEs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE(sigma_min=0.01, sigma_max=5.0)], ids=repr)
def test_marginal_prob_matches_simulating_the_forward_sde(sde):
    # Euler-Maruyama on sde() from t = 0 must reach the Gaussian kernel marginal_prob() gives.
    n, steps = 20_000, 500
    x0 = torch.tensor([0.8, -0.5], dtype=D).expand(n, 2)
    gen = _gen(7)
    # VE's kernel counts sigma_min as already in x(0) (Song et al.'s convention), so start from there
    x = x0 + (sde.sigma_min * torch.randn(n, 2, generator=gen, dtype=D) if isinstance(sde, VESDE) else 0.0)
    dt, checked = 1.0 / steps, 0
    for i in range(steps):
        f, g = sde.sde(x, i * dt)
        x = x + f * dt + g * math.sqrt(dt) * torch.randn(n, 2, generator=gen, dtype=D)
        if i + 1 in (150, 500):
            mean, std = sde.marginal_prob(x0[:1], (i + 1) * dt)
            assert ((x.mean(0) - mean[0]).abs() < 5 * std[0] / math.sqrt(n) + 2e-3).all(), (sde, i)
            assert ((x.std(0) / std[0] - 1).abs() < 5 / math.sqrt(2 * n) + 5e-3).all(), (sde, i)
            checked += 1
    assert checked == 2


def test_sde_priors_and_data_dependent_sigma_max():
    ve = VESDE(0.01, 50.0)
    z = ve.prior_sampling((20_000, 2), generator=_gen(8), dtype=D)
    assert abs(z.std().item() / 50.0 - 1) < 0.02
    assert torch.allclose(ve.prior_logp(z[:5]), Normal(0.0, 50.0).log_prob(z[:5]).sum(1))
    assert torch.allclose(VPSDE().prior_logp(z[:5]), Normal(0.0, 1.0).log_prob(z[:5]).sum(1))
    m, std = VPSDE().marginal_prob(torch.ones(1, 1), 1.0)
    assert m.item() == pytest.approx(math.exp(-0.25 * 19.9 - 0.05)) and std.item() == pytest.approx(1.0, abs=1e-4)
    m_sub, std_sub = SubVPSDE().marginal_prob(torch.ones(1, 1), 0.5)
    m_vp, std_vp = VPSDE().marginal_prob(torch.ones(1, 1), 0.5)
    assert m_sub == m_vp and std_sub.item() == pytest.approx(std_vp.item() ** 2)  # sub-VP: 1 - exp(2c), no sqrt
    data = torch.randn(50, 1, 2, 2, generator=_gen(9))
    far = max((a - b).norm().item() for a in data for b in data)
    assert VESDE.from_data(data).sigma_max == pytest.approx(far, rel=1e-6)
