"""Denoising diffusion probabilistic models: DDPM (Ho, Jain & Abbeel 2020, arXiv:2006.11239) with the
improvements of Nichol & Dhariwal (2021, arXiv:2102.09672), classifier-free guidance (Ho & Salimans
2022, arXiv:2207.12598), SDEdit (Meng et al. 2022, arXiv:2108.01073) and fast samplers.

Forward process on the schedule's integer timesteps t = 0 .. T-1 (the paper's 1 .. T)::

    q(x_t | x_0) = N(sqrt(ab_t) x_0, (1 - ab_t) I),   x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps   (eq. 4)

The network predicts ``eps`` (Ho et al. eq. 11), ``x0``, or ``v = sqrt(ab_t) eps - sqrt(1 - ab_t) x_0``
(Salimans & Ho 2022, arXiv:2202.00512); training minimises the mean squared error of that
prediction over uniform t (L_simple, Ho et al. eq. 14). The reverse step is
``p(x_{t-1} | x_t) = N(mu(x_t, x0_hat), sigma_t^2)`` with the Gaussian posterior's mean (eqs. 6-7)
and ``sigma_t^2`` = beta-tilde_t (fixed-small), beta_t (fixed-large), or learned: improved DDPM's
interpolation ``log sigma_t^2 = f log beta_t + (1 - f) log beta-tilde_t``, ``f = (v_out + 1) / 2`` from
a second network output (Nichol & Dhariwal eq. 15), trained by the hybrid loss
``L_simple + lambda L_vb`` (eq. 16, lambda = 0.001), where ``L_vb = T L_t`` for the sampled t in
bits per dimension (an unbiased one-term estimate of the bound's sum, as their code) computed with
the predicted mean detached, so L_vb trains only the variance.

Density (:meth:`DDPM.log_likelihood`): the variational bound (Ho et al. eq. 5)

    -log p(x_0) <= KL(q(x_T | x_0) || N(0, I)) + sum_{t>=1} KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))
                   - log p(x_0 | x_1)

in nats, every one of the T terms evaluated (one draw of x_t each), so it costs T network
evaluations per example: 0.65 s per sklearn digit (8x8, default UNet, T = 1000, one CPU thread;
222 s for the 360 test digits), about ten times that per MNIST image, hence ``eval_examples``
(``deepgen eval`` scores a seeded subset of 500 test examples; ``--full`` all). On discrete data the last term is the
discretised Gaussian decoder on the data's L levels (Ho et al. eq. 13), so the bound is on a
probability mass. On continuous data it is the Gaussian density ``N(x_0; mu(x_1), sigma_1^2)`` and
the number is a lower bound on the log *density* of the model whose last step is that Gaussian, in
the (standardised) model space. x0 predictions are clipped to [-1, 1] on discrete data, as by the
default sampler (and improved DDPM's ``calc_bpd_loop``), so the bound is that sampler's model's.
``method="ode"``: the probability-flow ODE likelihood of the VP SDE whose marginals at the training
timesteps are this schedule's (:class:`~deepgen.models.diffusion.sdes.ScheduleSDE`), at the first
timestep's noise level (tau = 1/T; see :mod:`deepgen.models.diffusion.base` for what it is on
discrete data and in high dimension).

Sampling options (:class:`DDPMSampleConfig`): ``sampler`` ancestral (Ho et al. Algorithm 2, on a
respaced subset of timesteps when ``steps`` < T), ddim (Song, Meng & Ermon 2021, arXiv:2010.02502),
heun (Karras et al. 2022, arXiv:2206.00364) or dpm (DPM-Solver++(2M), Lu et al. 2022,
arXiv:2211.01095), from :mod:`deepgen.samplers.diffusion`; ``guidance`` w (see the base module).

>>> from deepgen.data import DataInfo
>>> model = DDPM(DataInfo("toy", (2,)), DDPMConfig(timesteps=20, schedule="cosine", hidden=(16,)))
>>> model.sample(3, sampler="ddim", steps=5).shape
torch.Size([3, 2])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from deepgen.diffusion import DiffusionSchedule, linear_betas, normal_kl
from deepgen.errors import ConfigError
from deepgen.models.base import DensityKind, LogLikelihood
from deepgen.models.density import mean_with_stderr
from deepgen.models.diffusion.base import DenoiserOptions, DiffusionModel, check_guidance, with_shared_docs
from deepgen.models.diffusion.sdes import ScheduleSDE
from deepgen.registry import register
from deepgen.samplers import (
    ddim_sample,
    ddpm_sample,
    dpm_solver_pp_sample,
    heun_sample,
    noise_matched_start,
    replacement_constraint,
    sampling_timesteps,
)

LOG_2PI = math.log(2 * math.pi)
DEFAULT_STEPS = {"ddim": 50, "heun": 18, "dpm": 20}  # ancestral: every timestep
EDM_SIGMA_MAX = 80.0  # Karras et al. (2022): where the deterministic samplers start on the cosine schedule


@with_shared_docs
@dataclass(frozen=True)
class DDPMConfig(DenoiserOptions):
    """Options of :class:`DDPM`.

    timesteps: T, the number of diffusion steps (the linear schedule needs T >= 21).
    schedule: linear (Ho et al.) or cosine (Nichol & Dhariwal).
    prediction: what the network predicts: eps (the noise), x0 (the clean data) or v (Salimans & Ho).
    variance: reverse-step variance: fixed-small (beta-tilde), fixed-large (beta) or learned
        (improved DDPM's interpolation, hybrid loss).
    vb_weight: lambda of the hybrid loss L_simple + lambda L_vb (learned variance only).
    """

    timesteps: int = 1000
    schedule: Literal["linear", "cosine"] = "linear"
    prediction: Literal["eps", "x0", "v"] = "eps"
    variance: Literal["fixed-small", "fixed-large", "learned"] = "fixed-small"
    vb_weight: float = 0.001

    def __post_init__(self):
        super().__post_init__()
        if self.timesteps < 2:
            raise ConfigError(f"DDPMConfig.timesteps must be >= 2, got {self.timesteps}")
        if self.schedule == "linear":
            linear_betas(self.timesteps)  # a one-line ConfigError when T is too small for it
        if not (math.isfinite(self.vb_weight) and self.vb_weight >= 0):
            raise ConfigError(f"DDPMConfig.vb_weight must be a finite number >= 0, got {self.vb_weight}")


@dataclass(frozen=True)
class DDPMSampleConfig:
    """Sampling options of :class:`DDPM`.

    sampler: ancestral (DDPM), ddim, heun (EDM's 2nd order) or dpm (DPM-Solver++(2M)).
    steps: timesteps visited; default T for ancestral, 50 ddim, 18 heun, 20 dpm (at most T).
    eta: DDIM's noise: 0 deterministic, 1 the ancestral step on the same timesteps (ddim only).
    guidance: classifier-free guidance w: (1 + w) eps(x, y) - w eps(x); 0 none, -1 unconditional.
    clip: clip x0 predictions to the data's range [-1, 1]; default on for discrete data.
    """

    sampler: Literal["ancestral", "ddim", "heun", "dpm"] = "ancestral"
    steps: int | None = None
    eta: float = 0.0
    guidance: float = 0.0
    clip: bool | None = None

    def __post_init__(self):
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if not (math.isfinite(self.eta) and self.eta >= 0):
            raise ConfigError(f"eta must be a finite number >= 0, got {self.eta}")
        if self.eta != 0 and self.sampler != "ddim":
            raise ConfigError(f"eta is an option of the ddim sampler, not {self.sampler}")
        check_guidance(self.guidance)


@register("ddpm")
class DDPM(DiffusionModel):
    """DDPM (Ho et al. 2020): eps/x0/v prediction, fixed or learned variance, four samplers, guidance, SDEdit.

    Density: the variational bound over all T steps (lower bound, nats); ``method="ode"`` the
    probability-flow ODE likelihood. ``edit(x, strength)`` noises x to timestep ``strength * T`` and
    denoises it with the chosen sampler. Attributes: ``schedule`` (a
    :class:`~deepgen.diffusion.DiffusionSchedule`), ``sde`` (its continuous-time view), ``net``.

    Timesteps: ancestral and ddim visit ``steps`` evenly spaced timesteps from T-1 to 0 (ancestral
    by default all T); heun and dpm take EDM's rho = 7 spacing on the linear schedule. On the cosine
    schedule the deterministic samplers do not start at T-1: its last beta is clipped at 0.999, so
    ab(T-1) is about 2e-9 (T = 1000) and an x0 prediction there is the network's eps error times
    1/sqrt(ab) ~ 2e4, which a deterministic sampler carries to the end (a cosine DDPM with T = 100
    trained briefly on N(1.5, 0.5^2) gave DDIM samples of mean 1.07 and std 1.13 from T-1, and 1.51
    and 0.44 from T-2). ddim visits ``steps`` uniformly spaced timesteps from T-2 (ab ~ 2e-6, close
    enough to the N(0, I) the noise is drawn from); heun and dpm take the rho = 7 spacing from the
    last timestep whose sigma = sqrt((1 - ab) / ab) is at most EDM's sigma_max = 80 (t = 990 at
    T = 1000; from sigma(T-2) ~ 640 they spent their first steps at t = 998..995). With the exact
    denoiser of a 2-D Gaussian, Heun at 18 steps from there gives std 0.821 and 0.524 against 0.811
    and 0.505 (ancestral, all T), and 0.865, 0.557 from T-2.
    """

    Config = DDPMConfig
    SampleConfig = DDPMSampleConfig
    density_summary = (
        "lower bound (variational bound over all T steps); method ode: probability-flow ODE "
        "(exact in <= 16 dimensions, else Hutchinson estimate; dequantisation bound on discrete data)"
    )
    likelihood_methods = ("ode",)
    density_plot_method = "ode"  # 2-D maps: the smooth exact ODE density, not one draw of the bound per point
    train_defaults = {"lr": 5e-4, "grad_clip": 1.0, "ema_decay": 0.999}
    #: Timesteps (strata) of the unbiased bound estimate in the trainer's periodic evaluation.
    eval_timesteps = 50
    test_options = {
        "timesteps": 20,
        "schedule": "cosine",
        "channels": (8, 16),
        "layers_per_block": 1,
        "hidden": (32, 32),
        "ode_tol": 1e-3,
    }
    test_sample_options = {"steps": 4}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        T = cfg.timesteps
        self.schedule = DiffusionSchedule.linear(T) if cfg.schedule == "linear" else DiffusionSchedule.cosine(T)
        self.sde = ScheduleSDE(self.schedule)
        self.net = self.build_network(2 if cfg.variance == "learned" else 1)

    # -- the network in the schedule's terms --------------------------------------------------------
    def net_time(self, t: torch.Tensor) -> torch.Tensor:
        """Timesteps (B,) (fractional allowed) -> the network's time: ``t * 1000 / T`` (0 .. 999 for any T)."""
        return t.double() * (1000.0 / self.config.timesteps)

    def denoiser(self, x_t: torch.Tensor, t: torch.Tensor, y=None, w: float = 0.0) -> tuple[torch.Tensor, ...]:
        """Raw network outputs at timesteps ``t`` (B,): (prediction,) or (prediction, variance output)."""
        return self.guided(x_t, self.net_time(t), y, w)

    def eps_x0(self, x_t: torch.Tensor, t: torch.Tensor, pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(eps, x0) implied by a prediction of ``config.prediction`` at (fractional) timesteps t."""
        ab = self.sde.alpha_bar_at(t).to(x_t.dtype).view(-1, *([1] * (x_t.dim() - 1)))
        a, s = ab.sqrt(), (1 - ab).sqrt()
        kind = self.config.prediction
        if kind == "eps":
            return pred, (x_t - s * pred) / a
        if kind == "x0":
            return (x_t - a * pred) / s, pred
        return s * x_t + a * pred, a * x_t - s * pred  # v

    def eps_fn(self, y=None, w: float = 0.0):
        """``eps_fn(x_t, t)`` for the shared samplers (integer timesteps)."""
        return lambda x, t: self.eps_x0(x, t, self.denoiser(x, t, y, w)[0])[0]

    def score(self, v: torch.Tensor, tau: torch.Tensor, y=None) -> torch.Tensor:
        """The score of the continuous-time view at times tau (B,): ``-eps(v, tau T - 1) / sqrt(1 - ab(tau))``."""
        t = tau * self.config.timesteps - 1
        eps = self.eps_x0(v, t, self.denoiser(v, t, y)[0])[0]
        _, std = self.sde.marginal_prob(v, tau)
        return -eps / std

    def learned_log_variance(self, var_out: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Improved DDPM's ``f log beta_t + (1 - f) log beta-tilde_t`` with ``f = (var_out + 1) / 2``."""
        frac = (var_out + 1) / 2
        max_log = self.schedule.at("betas", t, x).log()
        min_log = self.schedule.at("posterior_log_variance_clipped", t, x)
        return frac * max_log + (1 - frac) * min_log

    def p_mean_log_variance(self, x_t, t, outs, clip=None, detach_mean=False):
        """``p(x_{t-1} | x_t)``: (mean, log-variance) from network outputs at integer timesteps t."""
        pred = outs[0].detach() if detach_mean else outs[0]
        x0 = self.eps_x0(x_t, t, pred)[1]
        if clip is not None:
            x0 = x0.clamp(*clip)
        mean = self.schedule.q_posterior(x0, x_t, t)[0]
        v = self.config.variance
        if v == "learned":
            return mean, self.learned_log_variance(outs[1], t, x_t)
        table = "posterior_log_variance_clipped" if v == "fixed-small" else "large_log_variance"
        return mean, self.schedule.at(table, t, x_t).expand_as(x_t)

    def vb_terms(self, x0, x_t, t, mean, log_var) -> torch.Tensor:
        """L_t per example (B,) nats: the KL to the posterior for t >= 1, the decoder's NLL at t = 0.

        The decoder is evaluated at (x0, unit variance) on rows with t >= 1, whose value
        ``torch.where`` discards: far in its tails (a mean from t = 40 scored as a decoder) its
        gradient is infinite, and the discarded branch's ``0 * inf`` made the hybrid loss NaN.
        """
        first = (t == 0).view(-1, *([1] * (x0.dim() - 1)))
        dec_mean, dec_log_var = torch.where(first, mean, x0), torch.where(first, log_var, torch.zeros_like(log_var))
        if self.info.is_discrete:
            nll = self.schedule.decoder_nll(x0, dec_mean, dec_log_var, self.info.levels)
        else:
            nll = 0.5 * (LOG_2PI + dec_log_var + (x0 - dec_mean) ** 2 * torch.exp(-dec_log_var)).flatten(1).sum(1)
        q_mean, _, q_log_var = self.schedule.q_posterior(x0, x_t, t)
        kl = normal_kl(q_mean, q_log_var, mean, log_var).flatten(1).sum(1)
        return torch.where(t == 0, nll, kl)

    # -- training -----------------------------------------------------------------------------------
    def loss(self, x, y=None, *, t=None, noise=None):
        """L_simple (+ lambda L_vb with a learned variance). ``t`` (B,) int64 and ``noise`` fix the draws."""
        x0 = self.to_model(x)
        T = self.config.timesteps
        t = torch.randint(0, T, (len(x),), device=x.device) if t is None else t
        noise = torch.randn_like(x0) if noise is None else noise
        x_t = self.schedule.q_sample(x0, t, noise)
        outs = self.network(x_t, self.net_time(t), self.training_labels(y, len(x)))
        target = {"eps": noise, "x0": x0, "v": self.schedule.velocity(x0, noise, t)}[self.config.prediction]
        mse = (outs[0] - target).pow(2).mean()
        out = {"loss": mse, "mse": mse.detach()}
        if self.config.variance == "learned":
            mean, log_var = self.p_mean_log_variance(x_t, t, outs, detach_mean=True)
            vb = T * self.vb_terms(x0, x_t, t, mean, log_var) / (self.info.dim * math.log(2))
            out["loss"] = mse + self.config.vb_weight * vb.mean()
            out["vb_bpd"] = vb.mean().detach()
        return out

    # -- density ------------------------------------------------------------------------------------
    @property
    def density_kind(self) -> DensityKind:
        return DensityKind.BOUND

    def why_no_density(self) -> str:
        return "the marginal p(x_0) integrates over x_1..x_T; use the variational bound or method ode"

    def bound(self, x: torch.Tensor, y=None, strata: int | None = None) -> torch.Tensor:
        """The variational bound on -log p(x) per example (B,) in nats (see the module docstring).

        ``strata`` None sums all T terms; S < T splits the timesteps into S runs of consecutive ones
        and evaluates one random timestep per run and example, weighted by the run's length: an
        unbiased estimate of the sum with S network evaluations (the trainer's evaluation).
        """
        x0 = self.to_model(x)
        T = self.config.timesteps
        strata = T if strata is None else min(strata, T)
        edges = torch.linspace(0, T, strata + 1, dtype=torch.float64).round().long().tolist()
        clip = self.check_clip(None)
        total = self.schedule.prior_kl(x0)
        for lo, hi in zip(edges[:-1], edges[1:]):
            t = torch.randint(lo, hi, (len(x),), device=x.device)
            x_t = self.schedule.q_sample(x0, t)
            mean, log_var = self.p_mean_log_variance(x_t, t, self.denoiser(x_t, t, y), clip)
            total = total + (hi - lo) * self.vb_terms(x0, x_t, t, mean, log_var)
        return total

    def log_likelihood(self, x, *, y=None, k=None, method=None) -> LogLikelihood:
        """The bound (default; ``k`` > 1 averages k independent evaluations, with their standard error)
        or, with ``method="ode"``, the probability-flow ODE likelihood (``k``: Hutchinson probes)."""
        self.check_method(method)
        self.check_input(x)
        y = self.check_labels(y, len(x), draw=False)
        if method == "ode":
            return self.ode_log_likelihood(x, lambda v, tau: self.score(v, tau, y), self.sde, self.sde.sampling_eps, k)
        k = k or 1
        decoder = f"discretised decoder, {self.info.levels} levels" if self.info.is_discrete else "Gaussian decoder"
        method_text = f"variational bound, all T={self.config.timesteps} terms ({decoder})"
        with torch.no_grad():
            draws = torch.stack([-self.bound(x, y) for _ in range(k)], 1)
        if k == 1:
            return LogLikelihood(draws[:, 0], DensityKind.BOUND, method_text)
        mean, se = mean_with_stderr(draws)
        return LogLikelihood(mean.to(x.dtype), DensityKind.BOUND, f"{method_text}, mean of {k} draws", se)

    @torch.no_grad()
    def evaluate(self, x, y=None):
        """The trainer's held-out numbers: the training loss (``mse``) and the bound estimated from
        ``eval_timesteps`` strata (unbiased; all T terms would cost T network evaluations per example)."""
        y = y if self.conditional else None
        return self.held_out_numbers(x, y, lambda: self.bound(x, y, self.eval_timesteps).double().mean().item())

    # -- sampling -----------------------------------------------------------------------------------
    @classmethod
    def describe_sampling(cls, options=None) -> str:
        o = options or cls.SampleConfig()
        steps = o.steps or DEFAULT_STEPS.get(o.sampler)
        words = {"ancestral": "ancestral", "ddim": "DDIM", "heun": "Heun", "dpm": "DPM-Solver++(2M)"}[o.sampler]
        words += f", {steps} steps" if steps else ", every timestep"
        if o.sampler == "ddim":
            words += f", eta={o.eta:g}"
        if o.guidance:
            words += f", guidance w={o.guidance:g}"
        if o.clip is not None:
            words += f", clip={'on' if o.clip else 'off'}"
        return words

    def timesteps_for(self, opts: DDPMSampleConfig, start: int | None = None) -> torch.Tensor:
        """The decreasing training timesteps a sampler visits (from ``start`` for an edit)."""
        T = self.config.timesteps
        steps = opts.steps if opts.steps is not None else min(DEFAULT_STEPS.get(opts.sampler, T), T)
        if opts.sampler != "ancestral" and self.config.schedule == "cosine":
            # see the class docstring: on the cosine schedule the deterministic samplers start below T-1
            if opts.sampler in ("heun", "dpm"):
                ab = self.schedule.alpha_bar[: T - 1]
                first = int(((1 - ab) / ab <= EDM_SIGMA_MAX**2).nonzero().max())
                ts = sampling_timesteps(self.schedule, min(steps, first + 1), "karras", start=first)
            else:
                ts = sampling_timesteps(self.schedule, min(steps, T - 1), start=T - 2)
        elif opts.sampler in ("heun", "dpm"):
            ts = sampling_timesteps(self.schedule, steps, "karras")
        else:
            ts = sampling_timesteps(self.schedule, steps)
        if start is not None:
            ts = torch.cat([torch.tensor([start]), ts[ts < start]])
        return ts

    def run_sampler(self, x_t, opts, generator, y, start=None, constraint=None, resample=1) -> torch.Tensor:
        """Denoise ``x_t`` (diffusion space) from timestep ``start`` (None: pure noise at T-1) to data,
        applying ``constraint(x, ab)`` after every step (ancestral and DDIM only), each step taken
        ``resample`` times (RePaint; ancestral with fixed variance only)."""
        self.check_sampling_guidance(opts.guidance)
        clip = self.check_clip(opts.clip)
        ts = self.timesteps_for(opts, start)
        eps_fn = self.eps_fn(y, opts.guidance)
        if constraint is not None and opts.sampler not in ("ancestral", "ddim"):
            raise ConfigError(
                f"data consistency at every step needs the ancestral or ddim sampler, not {opts.sampler!r}: "
                "the second-order samplers' steps reuse earlier network evaluations that a projection invalidates"
            )
        if resample != 1 and (opts.sampler != "ancestral" or self.config.variance == "learned"):
            raise ConfigError(
                "resampling (RePaint) re-noises each ancestral step: it needs -s sampler=ancestral and a fixed "
                f"variance, not sampler={opts.sampler} with variance={self.config.variance}"
            )
        kw = dict(steps=ts, clip=clip, generator=generator)
        if opts.sampler == "ddim":
            return ddim_sample(eps_fn, self.schedule, x_t, eta=opts.eta, constraint=constraint, **kw)
        if opts.sampler == "heun":
            return heun_sample(eps_fn, self.schedule, x_t, **kw)
        if opts.sampler == "dpm":
            return dpm_solver_pp_sample(eps_fn, self.schedule, x_t, **kw)
        if self.config.variance == "learned":
            return self._ancestral_learned(x_t, ts, y, opts.guidance, clip, generator, constraint)
        variance = "small" if self.config.variance == "fixed-small" else "large"
        return ddpm_sample(
            eps_fn, self.schedule, x_t, variance=variance, constraint=constraint, resample=resample, **kw
        )

    def _ancestral_learned(self, x, ts, y, w, clip, generator, constraint=None) -> torch.Tensor:
        """Ancestral sampling with the learned variance, respaced as in improved DDPM (sec. 4):
        on visited t > s, ``beta = 1 - ab_t / ab_s`` and the interpolation uses that beta and its beta-tilde."""
        ab = self.schedule.alpha_bar
        ts = ts.tolist()
        for i, t in enumerate(ts):
            a_t = float(ab[t])
            a_s = float(ab[ts[i + 1]]) if i + 1 < len(ts) else 1.0
            tb = torch.full((len(x),), t, dtype=torch.long, device=x.device)
            outs = self.denoiser(x, tb, y, w)
            x0 = self.eps_x0(x, tb, outs[0])[1]
            x0 = x0.clamp(*clip) if clip is not None else x0
            beta = 1 - a_t / a_s
            x = (math.sqrt(a_s) * beta / (1 - a_t)) * x0 + (math.sqrt(1 - beta) * (1 - a_s) / (1 - a_t)) * x
            if i + 1 < len(ts):
                frac = (outs[1] + 1) / 2
                log_var = frac * math.log(beta) + (1 - frac) * math.log(beta * (1 - a_s) / (1 - a_t))
                noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
                x = x + torch.exp(0.5 * log_var) * noise
            if constraint is not None:
                x = constraint(x, a_s)
        return x

    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        x_T = torch.randn((n, *self.info.shape), generator=generator, device=self.device)
        return self.from_model(self.run_sampler(x_T, options, generator, y))

    @torch.no_grad()
    def edit(self, x, strength, *, generator=None, y=None, **options):
        """SDEdit (Meng et al. 2022): x_t ~ q(x_t | x) at ``t = ceil(strength * T) - 1``, then the sampler
        from t (on its own timesteps below t). Strength 0 returns x; 1 samples afresh, ignoring x."""
        s, y, opts = self.prepare_edit(x, strength, y, options)
        if s == 0:
            return x.clone()
        if s == 1:
            return self.sample(len(x), generator=generator, y=y, options=opts)
        T = self.config.timesteps
        start = min(T - 1, max(0, math.ceil(s * T) - 1))
        x_t = self.schedule.q_sample(self.to_model(x), start, generator=generator)
        return self.from_model(self.run_sampler(x_t, opts, generator, y, start)).detach()

    @torch.no_grad()
    def restore(self, ref, project=None, *, noise=0.0, strength=1.0, resample=1, generator=None, y=None, **options):
        """Sampling given an observation, with data consistency at every step (ancestral or DDIM).

        Without ``noise``: start at the timestep of ``strength`` (1: pure noise) and after every step
        replace what the observation constrains by ``ref`` noised to that step's level
        (:func:`deepgen.samplers.replacement_constraint`: RePaint's update for pasted pixels, ILVR's
        for block averages); the result agrees with the observation exactly. With ``noise`` (the std
        of Gaussian noise in ``ref``, data units): start from ``ref`` itself at the timestep whose
        noise level matches it (:func:`deepgen.samplers.noise_matched_start`); ``strength`` is then
        unused. With a perfect denoiser the noisy case samples the posterior p(x | ref) (up to the
        start timestep's rounding, under one step of extra noise). The replacement is an
        approximation: the observed part steers the rest only through the denoiser's next
        prediction, which RePaint's resampling and gradient guidance (DPS, Chung et al. 2023,
        arXiv:2209.14687) set out to correct; ``resample`` > 1 takes every ancestral step that many
        times, re-noising in between (RePaint, jump length 1).
        """
        s, y, opts = self.prepare_edit(ref, strength, y, options)
        u = self.to_model(ref)
        if noise:
            if not (isinstance(noise, (int, float)) and noise > 0):
                raise ConfigError(f"noise must be a number >= 0, got {noise!r}")
            scale = 2.0 if self.info.is_discrete else 1.0  # to_model's slope
            start, extra = noise_matched_start(self.schedule, scale * float(noise))
            ab = float(self.schedule.alpha_bar[start])
            x_t = math.sqrt(ab) * u + extra * torch.randn(u.shape, generator=generator, dtype=u.dtype, device=u.device)
        else:
            if s == 0:
                return ref.clone()
            T = self.config.timesteps
            start = min(T - 1, max(0, math.ceil(s * T) - 1))
            x_t = self.schedule.q_sample(u, start, generator=generator)
        constraint = replacement_constraint(project, u, generator) if project is not None else None
        return self.from_model(self.run_sampler(x_t, opts, generator, y, start, constraint, resample)).detach()
