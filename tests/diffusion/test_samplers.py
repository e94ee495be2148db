"""Diffusion samplers with a perfect denoiser: Gaussian data, whose E[eps | x_t] and score are closed form.

For x0 ~ N(mu, diag(s^2)) and x_t = a x0 + sigma eps, x_t ~ N(a mu, a^2 s^2 + sigma^2), so
E[eps | x_t] = sigma (x_t - a mu) / (a^2 s^2 + sigma^2) and the score is -(x_t - a mu) / (a^2 s^2 + sigma^2).
Every sampler must then return N(mu, s^2); deterministic samplers must follow the probability-flow
ODE, whose flow map between two Gaussians is the increasing affine map, to their order of accuracy.
"""

from __future__ import annotations

import math

import pytest
import torch

from deepgen.diffusion import VESDE, VPSDE, DiffusionSchedule, SubVPSDE
from deepgen.errors import ConfigError
from deepgen.samplers import (
    ddim_sample,
    ddpm_sample,
    dpm_solver_pp_sample,
    eps_from_v_fn,
    eps_from_x0_fn,
    heun_sample,
    noise_matched_start,
    probability_flow_log_likelihood,
    probability_flow_sample,
    replacement_constraint,
    sampling_timesteps,
    score_from_eps,
    sde_sample,
)

D = torch.float64
MU = torch.tensor([0.5, -0.3], dtype=D)
SHARP = torch.tensor([0.4, 0.2], dtype=D)  # for the 1000-step samplers and the SDEs
BROAD = torch.tensor([0.8, 0.5], dtype=D)  # for few steps: sharper data needs more steps for the same bias
N = 4000
LINEAR, COSINE = DiffusionSchedule.linear(1000), DiffusionSchedule.cosine(1000)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def gaussian_eps(sched, mu=MU, s=SHARP):
    def eps_fn(x, t):
        assert t.dtype == torch.int64 and t.shape == x.shape[:1]  # the documented convention
        ab = sched.alpha_bar[t].view(-1, 1).to(x.dtype)
        a, sigma = ab.sqrt(), (1 - ab).sqrt()
        return sigma * (x - a * mu) / (a * a * s * s + sigma * sigma)

    return eps_fn


def gaussian_score(sde, mu=MU, s=SHARP):
    def score_fn(x, t):
        assert t.shape == x.shape[:1] and t.dtype == x.dtype
        m, std = sde.marginal_prob(torch.ones_like(x), t)
        return -(x - m * mu) / (m * m * s * s + std * std)

    return score_fn


def assert_gaussian(x, mu=MU, s=SHARP, z=4.5):
    """Sample mean and std within z standard errors of N(mu, s^2), per dimension."""
    n = len(x)
    mean_z = (x.mean(0) - mu) / (s / math.sqrt(n))
    std_z = (x.std(0) - s) / (s / math.sqrt(2 * n))
    assert mean_z.abs().max() < z and std_z.abs().max() < z, (mean_z.tolist(), std_z.tolist())


def flow_map(sched, x_T, s):
    """The exact probability-flow map from x_{T-1} ~ N(a mu, a^2 s^2 + 1 - a^2) to x0 ~ N(mu, s^2)."""
    a2 = float(sched.alpha_bar[-1])
    return MU + s * (x_T - math.sqrt(a2) * MU) / (a2 * s * s + 1 - a2).sqrt()


# -- discrete samplers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sched, variance", [(LINEAR, "small"), (LINEAR, "large"), (COSINE, "small")], ids=["linear", "large", "cosine"]
)
def test_ddpm_with_all_1000_steps_returns_the_data_gaussian(sched, variance):
    calls = []
    x = ddpm_sample(
        gaussian_eps(sched),
        sched,
        (N, 2),
        variance=variance,
        generator=_gen(1),
        dtype=D,
        callback=lambda i, x: calls.append(i),
    )
    assert calls == list(range(1, 1001)) and x.dtype == D
    assert_gaussian(x)


@pytest.mark.parametrize(
    "sampler, sched, kwargs",
    [
        (ddpm_sample, COSINE, {"steps": 250}),
        (ddim_sample, LINEAR, {"steps": 200}),
        (ddim_sample, COSINE, {"steps": 200, "eta": 0.5}),
        (heun_sample, LINEAR, {"steps": 40}),
        (dpm_solver_pp_sample, LINEAR, {"steps": 40}),
    ],
    ids=["ddpm-250", "ddim-200", "ddim-eta0.5-200", "heun-40", "dpm++2m-40"],
)
def test_fewer_step_samplers_return_the_data_gaussian(sampler, sched, kwargs):
    # The step counts keep each sampler's discretisation bias on the std below ~1.5 standard errors
    # (measured with 100k samples); the order test below checks accuracy at 10-40 steps.
    x = sampler(gaussian_eps(sched, s=BROAD), sched, (N, 2), generator=_gen(2), dtype=D, **kwargs)
    assert_gaussian(x, s=BROAD)


@pytest.mark.parametrize(
    "sampler, order, steps, spacing",
    [
        (ddim_sample, 1, 20, None),
        (heun_sample, 2, 20, "karras"),
        (heun_sample, 2, 20, "uniform"),
        (dpm_solver_pp_sample, 2, 20, "karras"),
    ],
    ids=["ddim", "heun-karras", "heun-uniform", "dpm++2m-karras"],
)
def test_deterministic_samplers_follow_the_flow_map_at_their_order(sampler, order, steps, spacing):
    x_T = torch.randn(6, 2, generator=_gen(3), dtype=D)
    exact = flow_map(LINEAR, x_T, SHARP)
    kw = {} if spacing is None else {"spacing": spacing}
    errs = [
        (sampler(gaussian_eps(LINEAR), LINEAR, x_T, steps=n, **kw) - exact).abs().max().item()
        for n in (steps, 2 * steps)
    ]
    observed = math.log2(errs[0] / errs[1])
    assert order - 0.25 < observed < order + 0.6, (errs, observed)  # measured 0.98, 2.2, 2.1, 2.1
    assert errs[1] < (0.06 if order == 1 else 0.01)


def test_heun_on_the_cosine_schedule_with_timesteps_that_skip_its_last():
    # the documented remedy for cosine's sigma(T-1) ~ 2e4: start where sigma is under EDM's 80
    ts = sampling_timesteps(COSINE, 20, "karras", start=990)
    x_T = torch.randn(6, 2, generator=_gen(3), dtype=D)
    a2 = float(COSINE.alpha_bar[int(ts[0])])
    exact = MU + SHARP * (x_T - math.sqrt(a2) * MU) / (a2 * SHARP**2 + 1 - a2).sqrt()
    assert (heun_sample(gaussian_eps(COSINE), COSINE, x_T, steps=ts) - exact).abs().max() < 0.03  # measured 0.023


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy 2 copy= notices from inside diffusers
def test_second_order_samplers_agree_with_diffusers_on_the_same_timesteps():
    schedulers = pytest.importorskip("diffusers")
    eps_fn = gaussian_eps(LINEAR)
    x_T = torch.randn(6, 2, generator=_gen(4), dtype=D)
    ts = sampling_timesteps(LINEAR, 10, "karras")
    dpm = schedulers.DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2, final_sigmas_type="zero")
    dpm.set_timesteps(timesteps=ts.tolist())
    x = x_T * dpm.init_noise_sigma
    for t in dpm.timesteps:
        x = dpm.step(eps_fn(x, torch.full((6,), int(t))), t, x).prev_sample
    assert (x - dpm_solver_pp_sample(eps_fn, LINEAR, x_T, steps=ts)).abs().max() < 1e-4  # diffusers runs in float32
    heun = schedulers.HeunDiscreteScheduler(beta_start=1e-4, beta_end=0.02)
    heun.set_timesteps(timesteps=ts.tolist())
    x = x_T * heun.init_noise_sigma
    for t in heun.timesteps:
        x = heun.step(eps_fn(heun.scale_model_input(x, t), torch.full((6,), round(float(t)))), t, x).prev_sample
    assert (x - heun_sample(eps_fn, LINEAR, x_T, steps=ts)).abs().max() < 1e-4


def test_ddim_eta_one_is_ancestral_sampling_on_the_same_timesteps():
    sched, eps_fn = COSINE, gaussian_eps(COSINE)
    x_T = torch.randn(N, 2, generator=_gen(5), dtype=D)
    # same noise draws: the same path, step for step (the posterior variance is eq. 16 with eta = 1)
    ddpm = ddpm_sample(eps_fn, sched, x_T, steps=10, generator=_gen(6))
    ddim = ddim_sample(eps_fn, sched, x_T, steps=10, eta=1.0, generator=_gen(6))
    assert (ddpm - ddim).abs().max() < 1e-10
    # independent draws: the same distribution; 10 steps are biased away from N(mu, s^2), so this
    # compares the two samplers' moments with each other (two-sample standard errors)
    other = ddim_sample(
        eps_fn, sched, torch.randn(N, 2, generator=_gen(7), dtype=D), steps=10, eta=1.0, generator=_gen(8)
    )
    se_mean, se_std = ddpm.std(0) * math.sqrt(2 / N), ddpm.std(0) * math.sqrt(1 / N)
    assert ((ddpm.mean(0) - other.mean(0)).abs() < 4.5 * se_mean).all()
    assert ((ddpm.std(0) - other.std(0)).abs() < 4.5 * se_std).all()
    assert (ddpm.std(0) < SHARP * 0.9).all()  # the 10-step bias is real, so the comparison is not vacuous


def test_ddim_eta_zero_is_deterministic_given_the_initial_noise():
    eps_fn = gaussian_eps(LINEAR)
    x_T = torch.randn(16, 2, generator=_gen(9), dtype=D)
    a = ddim_sample(eps_fn, LINEAR, x_T, steps=20, generator=_gen(1))
    b = ddim_sample(eps_fn, LINEAR, x_T, steps=20, generator=_gen(2))
    assert torch.equal(a, b)
    c = ddim_sample(eps_fn, LINEAR, x_T, steps=20, eta=0.5, generator=_gen(1))
    d = ddim_sample(eps_fn, LINEAR, x_T, steps=20, eta=0.5, generator=_gen(2))
    assert (c - d).abs().max() > 1e-3
    for sampler in (heun_sample, dpm_solver_pp_sample):
        assert torch.equal(
            sampler(eps_fn, LINEAR, x_T, steps=8, generator=_gen(1)), sampler(eps_fn, LINEAR, x_T, steps=8)
        )


def test_x0_and_v_adapters_give_the_same_samples():
    sched, eps_fn = COSINE, gaussian_eps(COSINE)
    x_T = torch.randn(64, 2, generator=_gen(10), dtype=D)

    def x0_fn(x, t):
        return sched.x0_from_eps(x, t, eps_fn(x, t))

    def v_fn(x, t):
        return sched.velocity(x0_fn(x, t), eps_fn(x, t), t)

    ref = ddim_sample(eps_fn, sched, x_T, steps=25)
    assert torch.allclose(ddim_sample(eps_from_x0_fn(x0_fn, sched), sched, x_T, steps=25), ref, atol=1e-8)
    assert torch.allclose(ddim_sample(eps_from_v_fn(v_fn, sched), sched, x_T, steps=25), ref, atol=1e-8)


def test_float32_nfe_and_callbacks():
    eps64 = gaussian_eps(LINEAR)
    calls = []

    def eps_fn(x, t):
        calls.append(int(t[0]))
        return eps64(x, t)

    x_T = torch.randn(8, 2, generator=_gen(11))
    out = heun_sample(eps_fn, LINEAR, x_T, steps=6)
    assert out.dtype == torch.float32 and len(calls) == 2 * 6 - 1  # Heun: 2S - 1 evaluations
    ts = sampling_timesteps(LINEAR, 6, "karras").tolist()
    assert calls[0] == ts[0] and calls[-1] == ts[-1] and set(calls) == set(ts)  # training timesteps only
    assert torch.allclose(out.double(), heun_sample(eps64, LINEAR, x_T.double(), steps=6), atol=1e-4)
    calls.clear()
    seen = []
    dpm_solver_pp_sample(eps_fn, LINEAR, x_T, steps=6, callback=lambda i, x: seen.append(i))
    assert len(calls) == 6 and seen == [1, 2, 3, 4, 5, 6]


def test_sampling_timesteps():
    assert sampling_timesteps(LINEAR, 1).tolist() == [999]
    assert sampling_timesteps(LINEAR, 1000).tolist() == list(range(999, -1, -1))
    assert sampling_timesteps(LINEAR, [3, 700, 50]).tolist() == [700, 50, 3]
    for sched in (LINEAR, COSINE):
        for steps in (2, 7, 50, 500, 1000):
            for spacing in ("uniform", "karras"):
                ts = sampling_timesteps(sched, steps, spacing)
                assert len(ts) == steps and ts[0] == 999 and ts[-1] == 0 and (ts[1:] < ts[:-1]).all()
    # from a later start: the same spacings between start and 0
    assert sampling_timesteps(LINEAR, 5, start=998).tolist() == [998, 749, 499, 250, 0]
    assert sampling_timesteps(LINEAR, 1, start=500).tolist() == [500]
    ts = sampling_timesteps(COSINE, 18, "karras", start=990)
    assert len(ts) == 18 and ts[0] == 990 and ts[-1] == 0 and (ts[1:] < ts[:-1]).all()
    with pytest.raises(ConfigError, match="between 1 and 11"):
        sampling_timesteps(LINEAR, 12, start=10)
    with pytest.raises(ConfigError, match="start"):
        sampling_timesteps(LINEAR, 2, start=1000)
    # karras: log-sigma spacing, denser at low noise than uniform timesteps are
    assert sampling_timesteps(LINEAR, 10, "karras")[-2] < sampling_timesteps(LINEAR, 10)[-2]


def test_discrete_sampler_validation_is_one_line_config_errors():
    eps_fn = gaussian_eps(LINEAR)
    x = torch.zeros(4, 2, dtype=D)
    for bad, match in [
        (lambda: ddim_sample(eps_fn, LINEAR, x, steps=0), "between 1 and"),
        (lambda: ddim_sample(eps_fn, LINEAR, x, steps=1001), "T=1000"),
        (lambda: ddim_sample(eps_fn, LINEAR, x, steps=True), "steps"),
        (lambda: ddim_sample(eps_fn, LINEAR, x, eta=-0.1), "eta"),
        (lambda: ddim_sample(eps_fn, LINEAR, x, eta=50.0), "too large"),
        (lambda: ddim_sample(eps_fn, LINEAR, x, steps=[5, 5, 1]), "distinct"),
        (lambda: ddim_sample(eps_fn, LINEAR, x, steps=[1000]), "distinct integers"),
        (lambda: ddim_sample(eps_fn, LINEAR, x, steps=[0.5]), "integers"),
        (lambda: ddpm_sample(eps_fn, LINEAR, x, variance="learned"), "variance"),
        (lambda: heun_sample(eps_fn, LINEAR, x, spacing="log"), "spacing"),
        (lambda: dpm_solver_pp_sample(eps_fn, "linear", x), "DiffusionSchedule"),
        (lambda: ddim_sample(eps_fn, LINEAR, torch.zeros(4, 2, dtype=torch.long)), "floating"),
        (lambda: ddim_sample(eps_fn, LINEAR, (0, 2)), "positive"),
        (lambda: ddim_sample(lambda x, t: x[:, :1], LINEAR, x), r"eps_fn returned \(4, 1\)"),
    ]:
        with pytest.raises(ConfigError, match=match) as info:
            bad()
        assert "\n" not in str(info.value)


# -- score SDEs ----------------------------------------------------------------------------------------


SDES = [VPSDE(), SubVPSDE(), VESDE()]


@pytest.mark.parametrize("sde", SDES, ids=repr)
@pytest.mark.parametrize("corrector_steps", [0, 2])
def test_predictor_corrector_returns_the_data_gaussian(sde, corrector_steps):
    x = sde_sample(
        gaussian_score(sde), sde, (N, 2), steps=500, corrector_steps=corrector_steps, generator=_gen(12), dtype=D
    )
    assert_gaussian(x)


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_the_corrector_skips_a_zero_score_instead_of_an_unbounded_step(sde):
    """Langevin's step size 2 alpha (r ||z|| / ||score||)^2 is unbounded at a zero score (an untrained or
    zero-initialised network): the corrector must leave x to the predictor there, not blow it up."""
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    x_T = sde.prior_sampling((8, 2), generator=_gen(14), dtype=D)
    with_c = sde_sample(zero, sde, x_T.clone(), steps=5, corrector_steps=2, generator=_gen(15), dtype=D)
    without = sde_sample(zero, sde, x_T.clone(), steps=5, generator=_gen(15), dtype=D)  # the predictor alone
    assert torch.isfinite(with_c).all() and with_c.abs().max() < 3 * without.abs().max()


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_probability_flow_sampling_follows_the_exact_flow_map(sde):
    x_T = sde.prior_sampling((6, 2), generator=_gen(13), dtype=D)
    out = probability_flow_sample(gaussian_score(sde), sde, x_T, rtol=1e-8, atol=1e-8)
    ones = torch.ones(1, 2, dtype=D)
    (m1, s1), (me, se) = sde.marginal_prob(ones, 1.0), sde.marginal_prob(ones, sde.sampling_eps)
    v1, ve = m1**2 * SHARP**2 + s1**2, me**2 * SHARP**2 + se**2
    assert (out - (me * MU + (ve / v1).sqrt() * (x_T - m1 * MU))).abs().max() < 1e-5


def _exact_log_likelihood(sde, x, z, eps):
    """log p_eps(x) under the ODE with the prior as p_1: the Gaussian marginal at eps, corrected by the
    prior's mismatch with the true marginal at t = 1 (exp(c(1)) mu is 0.003, not 0, for the VP SDE)."""
    ones = torch.ones(1, 2, dtype=D)
    (me, se), (m1, s1) = sde.marginal_prob(ones, eps), sde.marginal_prob(ones, 1.0)
    normal = torch.distributions.Normal
    log_p_eps = normal(me * MU, (me**2 * SHARP**2 + se**2).sqrt()).log_prob(x).sum(1)
    log_p_1 = normal(m1 * MU, (m1**2 * SHARP**2 + s1**2).sqrt()).log_prob(z).sum(1)
    return log_p_eps + sde.prior_logp(z) - log_p_1


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_probability_flow_likelihood_of_the_exact_score_is_the_gaussian_log_density(sde):
    x = MU + SHARP * torch.randn(8, 2, generator=_gen(14), dtype=D)
    with torch.no_grad():  # sampling code runs here; the divergence's gradients are taken locally
        log_p, z = probability_flow_log_likelihood(gaussian_score(sde), sde, x, rtol=1e-8, atol=1e-8)
    assert log_p.shape == (8,) and z.shape == (8, 2)
    assert (log_p - _exact_log_likelihood(sde, x, z, 1e-5)).abs().max() < 1e-5
    default, _ = probability_flow_log_likelihood(gaussian_score(sde), sde, x)  # the paper's 1e-5 tolerances
    assert (default - log_p).abs().max() < 1e-3


def test_probability_flow_likelihood_uses_unbiased_hutchinson_in_high_dimension():
    # 20 dimensions (> 16: "auto" picks Hutchinson), a rotated Gaussian so the Jacobian is not diagonal
    # (Rademacher probes are exact for a diagonal one); one point with 512 independent probes.
    dim = 20
    rot, _ = torch.linalg.qr(torch.randn(dim, dim, generator=_gen(15), dtype=D))
    mu, s = torch.linspace(-0.5, 0.5, dim, dtype=D), torch.linspace(0.3, 0.9, dim, dtype=D)
    sde = VPSDE()
    inner = gaussian_score(sde, mu, s)

    def score(x, t):  # data x = rot @ y with y ~ N(mu, diag(s^2))
        return inner(x @ rot, t) @ rot.T

    x = (rot @ (mu + s * torch.randn(dim, generator=_gen(16), dtype=D))).expand(512, dim)
    est, _ = probability_flow_log_likelihood(score, sde, x, generator=_gen(17), method="rk4", steps=40)
    exact, _ = probability_flow_log_likelihood(score, sde, x[:1], divergence="exact", method="rk4", steps=40)
    y_exact, _ = probability_flow_log_likelihood(inner, sde, x[:1] @ rot, divergence="exact", method="rk4", steps=40)
    assert abs(exact.item() - y_exact.item()) < 1e-8  # log-density is invariant under the rotation
    assert est.std() > 0.01  # it is an estimate
    assert abs(est.mean() - exact[0]) < 4 * est.std() / math.sqrt(len(est)), (est.mean(), exact)


def test_score_from_eps_and_sde_validation():
    sde = VPSDE()
    x = torch.randn(5, 2, generator=_gen(17), dtype=D)
    t = torch.full((5,), 0.3, dtype=D)
    _, std = sde.marginal_prob(x, t)
    exact = gaussian_score(sde)(x, t)
    assert torch.allclose(score_from_eps(lambda x, t: -std * gaussian_score(sde)(x, t), sde)(x, t), exact)
    score = gaussian_score(sde)
    for bad, match in [
        (lambda: sde_sample(score, sde, x, steps=0), "steps"),
        (lambda: sde_sample(score, sde, x, corrector_steps=-1), "corrector_steps"),
        (lambda: sde_sample(score, sde, x, corrector_steps=1, snr=0.0), "snr"),
        (lambda: sde_sample(score, sde, x, eps=0.0), "eps"),
        (lambda: sde_sample(score, LINEAR, x), "SDE"),
        (lambda: probability_flow_log_likelihood(score, sde, x, divergence="trace"), "divergence"),
        (lambda: sde_sample(lambda x, t: x[:1], sde, x), r"score_fn returned \(1, 2\)"),
    ]:
        with pytest.raises(ConfigError, match=match) as info:
            bad()
        assert "\n" not in str(info.value)


# -- data consistency (inverse problems) -------------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["ancestral", "ddim-eta1"])
def test_denoising_from_the_noise_matched_start_samples_the_gaussian_posterior(sampler):
    """y = x0 + sigma n with x0 ~ N(MU, SHARP^2): p(x0 | y) is Gaussian in closed form, and the reverse
    process started from sqrt(ab_t) y (topped up by less than one step's noise) must sample it."""
    sigma, y = 0.3, torch.tensor([0.9, -0.6], dtype=D)
    t, extra = noise_matched_start(LINEAR, sigma)
    ab = float(LINEAR.alpha_bar[t])
    assert (1 - ab) / ab >= sigma**2 > (1 - float(LINEAR.alpha_bar[t - 1])) / float(LINEAR.alpha_bar[t - 1])
    assert extra**2 == pytest.approx(1 - ab * (1 + sigma**2)) and extra**2 < float(LINEAR.betas[t])
    x_t = math.sqrt(ab) * y + extra * torch.randn(N, 2, generator=_gen(2), dtype=D)
    steps = torch.arange(t, -1, -1)
    if sampler == "ancestral":
        x = ddpm_sample(gaussian_eps(LINEAR), LINEAR, x_t, steps=steps, generator=_gen(3))
    else:
        x = ddim_sample(gaussian_eps(LINEAR), LINEAR, x_t, steps=steps, eta=1.0, generator=_gen(3))
    var = 1 / (1 / SHARP**2 + 1 / sigma**2)
    assert_gaussian(x, var * (MU / SHARP**2 + y / sigma**2), var.sqrt())


def test_noise_matched_start_rejects_noise_beyond_the_schedule():
    with pytest.raises(ConfigError, match="exceeds"):
        noise_matched_start(LINEAR, 1e4)
    with pytest.raises(ConfigError, match="positive"):
        noise_matched_start(LINEAR, 0.0)


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_replacement_keeps_the_observed_coordinate_at_every_level_and_exactly_at_the_end(sampler):
    """Observe x0[:, 0] of independent Gaussian coordinates: after each step coordinate 0 is the
    observation noised to the step's level, at the end the observation itself, and coordinate 1
    (independent of it) still has the data's marginal."""
    ref = torch.zeros(N, 2, dtype=D)
    ref[:, 0] = 0.7
    levels = []

    def paste_first(x, r):
        return torch.cat([r[:, :1], x[:, 1:]], 1)

    inner = replacement_constraint(paste_first, ref, _gen(5))

    def constraint(x, ab):
        levels.append(ab)
        out = inner(x, ab)
        if ab < 1:  # the pasted coordinate is a draw of q(x_s | x0 = 0.7)
            z = (out[:, 0] - math.sqrt(ab) * 0.7) / math.sqrt(1 - ab)
            assert abs(z.mean().item()) < 4.5 / math.sqrt(N) and abs(z.std().item() - 1) < 4.5 / math.sqrt(2 * N)
        return out

    kw = dict(generator=_gen(4), dtype=D, constraint=constraint)
    if sampler == "ancestral":
        s, x = SHARP, ddpm_sample(gaussian_eps(LINEAR), LINEAR, (N, 2), **kw)
    else:
        s, x = BROAD, ddim_sample(gaussian_eps(LINEAR, s=BROAD), LINEAR, (N, 2), steps=50, **kw)
    assert levels == sorted(levels) and levels[-1] == 1.0 and len(levels) == (1000 if sampler == "ancestral" else 50)
    assert torch.equal(x[:, 0], ref[:, 0])
    assert_gaussian(x[:, 1:], MU[1:], s[1:])


def test_repaint_resampling_moves_replacement_towards_the_true_conditional():
    """Correlated Gaussian data (rho = 0.9), coordinate 0 observed at 1: replacement alone leaves
    coordinate 1 far from E[x1 | x0 = 1] = 0.9 (the observation steers it only through the next
    prediction); taking each step 5 times, re-noised in between (RePaint), brings it close."""
    s, rho, c = 0.8, 0.9, 1.0
    cov = torch.tensor([[s * s, rho * s * s], [rho * s * s, s * s]], dtype=D)

    def eps_fn(x, t):
        ab = LINEAR.alpha_bar[t].to(D).view(-1, 1, 1)
        marginal = ab * cov + (1 - ab) * torch.eye(2, dtype=D)
        return (1 - ab).sqrt().view(-1, 1) * torch.linalg.solve(marginal, x.unsqueeze(-1)).squeeze(-1)

    ref = torch.zeros(N, 2, dtype=D)
    ref[:, 0] = c

    def paste(x, r):
        return torch.cat([r[:, :1], x[:, 1:]], 1)

    def run(resample):
        g = _gen(0)
        con = replacement_constraint(paste, ref, g)
        return ddpm_sample(eps_fn, LINEAR, (N, 2), steps=100, dtype=D, generator=g, constraint=con, resample=resample)

    want = rho * c
    plain, repaint = run(1), run(5)
    assert torch.equal(repaint[:, 0], ref[:, 0])
    assert abs(plain[:, 1].mean().item() - want) > 0.2  # measured 0.27
    assert abs(repaint[:, 1].mean().item() - want) < 0.08  # measured 0.04
    with pytest.raises(ConfigError, match="resample"):
        ddpm_sample(eps_fn, LINEAR, (2, 2), steps=3, resample=0)
