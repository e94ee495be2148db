"""Score-based generative modelling through SDEs (Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole
2021, arXiv:2011.13456): a network learns the score of the forward SDE's marginals, and samples come
from the reverse-time SDE or the probability-flow ODE, which also gives exact likelihoods.

Forward SDEs (:mod:`deepgen.diffusion`, eqs. 9, 11, 12), with the Gaussian kernel
``x_t | x_0 ~ N(m(t) x_0, std(t)^2 I)``:

* ``vp``: ``dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw``, beta linear from beta_min to beta_max
  (DDPM's continuous limit);
* ``subvp``: VP's drift with diffusion ``sqrt(beta(t) (1 - exp(-2 int_0^t beta)))``;
* ``ve``: ``dx = sqrt(d sigma^2 / dt) dw``, ``sigma(t) = sigma_min (sigma_max / sigma_min)^t``
  (NCSN's continuous limit), prior ``N(0, sigma_max^2 I)``.

Training: continuous-time denoising score matching (eq. 7) with the paper's weighting
``lambda(t) = std(t)^2`` (proportional to ``1 / E||grad log p_0t(x_t | x_0)||^2``), t ~ U(train_eps, 1).
The network ``eps_theta(x_t, t)`` parametrises the score as ``s_theta = -eps_theta / std(t)`` (the
paper's code: DDPM++ for VP, NCSN++'s scaling by 1/sigma for VE), so the weighted objective is

    E_t E_{x_0, z} [ std(t)^2 || s_theta(x_t, t) + z / std(t) ||^2 ] = E || eps_theta(x_t, t) - z ||^2,

``x_t = m(t) x_0 + std(t) z``, averaged over dimensions. Network time (:mod:`deepgen.nn.unet`'s scale):
``999 t`` for VP and sub-VP (the paper's code), ``250 log sigma(t)`` for VE.

Sampling (:class:`ScoreSDESampleConfig`): ``pc`` is predictor-corrector sampling (Algorithms 2-3):
Euler-Maruyama steps of the reverse SDE (eq. 6) from t = 1 to ``sampling_eps`` (1e-3 VP, 1e-5 VE),
each after ``corrector_steps`` Langevin steps at signal-to-noise ratio ``snr``, the last predictor
step noise-free; ``ode`` integrates the probability-flow ODE ``dx/dt = f - g^2 s_theta / 2`` (eq. 13)
with adaptive RK45 (or RK4 with ``steps``) and ends with Tweedie's denoising
``x_0 = (x + std^2 s_theta(x, eps)) / m(eps)`` (Efron 2011) at the last time.

Density: the probability-flow ODE's log-likelihood at t = 1e-5 (sec. 4.3; exact in low dimension,
a Hutchinson estimate above, a dequantisation bound on discrete data: see
:mod:`deepgen.models.diffusion.base`). ``edit(x, strength)`` is SDEdit (Meng et al. 2022,
arXiv:2108.01073): ``x_t ~ p_0t(x_t | x)`` at ``t = strength``, then the sampler from t (pc without
a corrector by default).

>>> from deepgen.data import DataInfo
>>> model = ScoreSDE(DataInfo("toy", (2,)), ScoreSDEConfig(sde="subvp", hidden=(16,)))
>>> model.sample(3, steps=10).shape
torch.Size([3, 2])
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import torch

from deepgen.diffusion import VESDE, VPSDE, SubVPSDE
from deepgen.errors import ConfigError
from deepgen.models.base import LogLikelihood
from deepgen.models.diffusion.base import DenoiserOptions, DiffusionModel, check_guidance, with_shared_docs
from deepgen.models.diffusion.sdes import TimeScaledSDE
from deepgen.registry import register
from deepgen.samplers import probability_flow_sample, sde_sample

#: Predictor steps of the pc sampler by default (the paper's N = 1000 for VP; it used 2000 for VE).
PC_STEPS = 1000


@with_shared_docs
@dataclass(frozen=True)
class ScoreSDEConfig(DenoiserOptions):
    """Options of :class:`ScoreSDE`.

    sde: the forward SDE: vp (variance preserving), subvp (sub-VP) or ve (variance exploding).
    beta_min, beta_max: beta(t)'s range for vp and subvp (the paper's 0.1 and 20).
    sigma_min, sigma_max: sigma(t)'s range for ve; sigma_max none is 2 sqrt(D) on discrete data (the
        diameter of [-1, 1]^D) and 2 (sqrt(D) + 3) on standardised data: upper estimates of the largest
        distance between two examples (Song & Ermon 2020, arXiv:2006.09011, technique 1).
    train_eps: the smallest training time (the paper's code: 1e-5).
    """

    sde: Literal["vp", "subvp", "ve"] = "vp"
    beta_min: float = 0.1
    beta_max: float = 20.0
    sigma_min: float = 0.01
    sigma_max: float | None = None
    train_eps: float = 1e-5

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.beta_min <= self.beta_max < math.inf:
            raise ConfigError(f"need 0 < beta_min <= beta_max, got {self.beta_min}, {self.beta_max}")
        if not (
            0 < self.sigma_min < math.inf and (self.sigma_max is None or self.sigma_min < self.sigma_max < math.inf)
        ):
            raise ConfigError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")
        if not 0 < self.train_eps < 0.1:
            raise ConfigError(f"ScoreSDEConfig.train_eps must lie in (0, 0.1), got {self.train_eps}")


@dataclass(frozen=True)
class ScoreSDESampleConfig:
    """Sampling options of :class:`ScoreSDE`.

    sampler: pc (predictor-corrector: reverse SDE with Langevin corrector) or ode (probability flow).
    steps: pc: predictor steps (default 1000); ode: none for adaptive RK45, else RK4 with this many steps.
    corrector_steps: Langevin steps per predictor step (pc); default 1 for ve, 0 for vp and subvp.
    snr: the corrector's signal-to-noise ratio r (the paper's 0.16).
    guidance: classifier-free guidance w: (1 + w) s(x, y) - w s(x); 0 none, -1 unconditional.
    tol: relative and absolute tolerance of the adaptive ODE sampler.
    """

    sampler: Literal["pc", "ode"] = "pc"
    steps: int | None = None
    corrector_steps: int | None = None
    snr: float = 0.16
    guidance: float = 0.0
    tol: float = 1e-5

    def __post_init__(self):
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if self.corrector_steps is not None and (self.corrector_steps < 0 or self.sampler != "pc"):
            raise ConfigError(f"corrector_steps must be >= 0 and needs sampler=pc, got {self.corrector_steps}")
        if not (math.isfinite(self.snr) and self.snr > 0):
            raise ConfigError(f"snr must be a finite number > 0, got {self.snr}")
        if not (math.isfinite(self.tol) and self.tol > 0):
            raise ConfigError(f"tol must be a finite number > 0, got {self.tol}")
        check_guidance(self.guidance)


@register("score-sde")
class ScoreSDE(DiffusionModel):
    """Score SDE (Song et al. 2021): VP, sub-VP or VE SDE; predictor-corrector or probability-flow sampling.

    Density: the probability-flow ODE likelihood (exact to solver tolerance in <= 16 dimensions,
    else a Hutchinson estimate; a dequantisation bound on discrete data). Attributes: ``sde`` (the
    forward SDE, :mod:`deepgen.diffusion`), ``net``.
    """

    Config = ScoreSDEConfig
    SampleConfig = ScoreSDESampleConfig
    has_exact_density = True
    density_summary = (
        "exact (probability-flow ODE, to solver tolerance) in <= 16 dimensions, else Hutchinson estimate; "
        "dequantisation bound on discrete data"
    )
    train_defaults = {"lr": 5e-4, "grad_clip": 1.0, "ema_decay": 0.999}
    #: The time the likelihood is taken at (the paper's 1e-5).
    likelihood_eps = 1e-5
    #: Examples of each validation batch whose ODE likelihood the trainer's evaluation computes.
    eval_batch_examples = 32
    test_options = {"channels": (8, 16), "layers_per_block": 1, "hidden": (32, 32), "ode_tol": 1e-3}
    test_sample_options = {"steps": 4}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        if cfg.sde == "ve":
            default = 2 * math.sqrt(info.dim) if info.is_discrete else 2 * (math.sqrt(info.dim) + 3)
            sigma_max = cfg.sigma_max or default
            if sigma_max <= cfg.sigma_min:
                raise ConfigError(f"{self.name}: sigma_max {sigma_max:.4g} must exceed sigma_min {cfg.sigma_min}")
            self.sde = VESDE(cfg.sigma_min, sigma_max)
        else:
            self.sde = (VPSDE if cfg.sde == "vp" else SubVPSDE)(cfg.beta_min, cfg.beta_max)
        self.net = self.build_network(1)

    # -- the network as a score -----------------------------------------------------------------------
    def net_time(self, t: torch.Tensor) -> torch.Tensor:
        """Times t (B,) in [0, 1] -> the network's time: 999 t (VP, sub-VP) or 250 log sigma(t) (VE)."""
        t = t.double()
        if self.config.sde == "ve":
            return 250 * torch.log(self.sde.sigma(t))
        return 999 * t

    def score(self, x: torch.Tensor, t: torch.Tensor, y=None, w: float = 0.0) -> torch.Tensor:
        """``s_theta(x, t) = -eps_theta(x, t) / std(t)`` with guidance w, for x (B, ...) and t (B,)."""
        eps = self.guided(x, self.net_time(t), y, w)[0]
        _, std = self.sde.marginal_prob(x, t)
        return -eps / std

    def loss(self, x, y=None, *, t=None, noise=None):
        """Denoising score matching with lambda(t) = std(t)^2: mean ||eps_theta(x_t, t) - z||^2.

        ``t`` (B,) and ``noise`` fix the draws (default t ~ U(train_eps, 1), z ~ N(0, I)).
        """
        x0 = self.to_model(x)
        if t is None:
            t = torch.rand(len(x), device=x.device) * (1 - self.config.train_eps) + self.config.train_eps
        noise = torch.randn_like(x0) if noise is None else noise
        mean, std = self.sde.marginal_prob(x0, t)
        out = self.network(mean + std * noise, self.net_time(t), self.training_labels(y, len(x)))[0]
        mse = (out - noise).pow(2).mean()
        return {"loss": mse, "mse": mse.detach()}

    # -- density --------------------------------------------------------------------------------------
    @property
    def density_kind(self):
        return self.ode_kind

    def log_likelihood(self, x, *, y=None, k=None, method=None) -> LogLikelihood:
        """The probability-flow ODE log-likelihood (``k``: Hutchinson probes above 16 dimensions)."""
        self.check_method(method)
        self.check_input(x)
        y = self.check_labels(y, len(x), draw=False)
        return self.ode_log_likelihood(x, lambda v, t: self.score(v, t, y), self.sde, self.likelihood_eps, k)

    @torch.no_grad()
    def evaluate(self, x, y=None):
        """The trainer's held-out numbers: the DSM loss (``mse``) of the batch and the ODE likelihood of
        its first ``eval_batch_examples`` examples (an unbiased subsample: the ODE costs hundreds of
        network evaluations per example, 2 minutes for 143 digits with the default UNet on 2 cores)."""
        y = y if self.conditional else None
        n = min(len(x), self.eval_batch_examples)
        yn = None if y is None else y[:n]
        return self.held_out_numbers(x, y, lambda: -self.log_likelihood(x[:n], y=yn).values.double().mean().item())

    # -- sampling -------------------------------------------------------------------------------------
    @classmethod
    def describe_sampling(cls, options=None) -> str:
        o = options or cls.SampleConfig()
        if o.sampler == "pc":
            words = f"predictor-corrector, {o.steps or PC_STEPS} steps"
            if o.corrector_steps is None:
                words += ", the SDE's default corrector"
            elif o.corrector_steps:
                words += f", {o.corrector_steps} corrector steps (snr {o.snr:g})"
            else:
                words += ", no corrector"
        else:
            how = f"RK4, {o.steps} steps" if o.steps else f"RK45, tol {o.tol:g}"
            words = f"probability-flow ODE ({how})"
        return words + (f", guidance w={o.guidance:g}" if o.guidance else "")

    def run_sampler(self, x_t, opts, generator, y, t0: float = 1.0) -> torch.Tensor:
        """Run the reverse process from ``x_t`` (diffusion space) at time ``t0`` to the data."""
        self.check_sampling_guidance(opts.guidance)

        def score(v, t):
            return self.score(v, t, y, opts.guidance)

        sde, fn = self.sde, score
        if t0 < 1:
            sde = TimeScaledSDE(self.sde, t0)
            fn = sde.score_fn(score)
        if opts.sampler == "pc":
            steps = max(1, round((opts.steps or PC_STEPS) * t0))
            corrector = opts.corrector_steps
            if corrector is None:
                corrector = 1 if self.config.sde == "ve" else 0
            return sde_sample(fn, sde, x_t, steps=steps, corrector_steps=corrector, snr=opts.snr, generator=generator)
        method, steps = ("rk45", None) if opts.steps is None else ("rk4", max(1, round(opts.steps * t0)))
        x = probability_flow_sample(fn, sde, x_t, method=method, steps=steps, rtol=opts.tol, atol=opts.tol)
        t_end = torch.full((len(x),), self.sde.sampling_eps, dtype=x.dtype, device=x.device)
        m, std = self.sde.marginal_prob(torch.ones_like(x), t_end)
        return (x + std**2 * score(x, t_end)) / m  # Tweedie: E[x_0 | x_eps]

    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        x_T = self.sde.prior_sampling((n, *self.info.shape), generator=generator, device=self.device)
        return self.from_model(self.run_sampler(x_T, options, generator, y))

    @torch.no_grad()
    def edit(self, x, strength, *, generator=None, y=None, **options):
        """SDEdit (Meng et al. 2022): x_t ~ p_0t(x_t | x) at ``t = strength``, then the sampler from t.

        Strength 0 (or below the sampler's final time) returns x; 1 samples afresh, ignoring x.
        Below 1, the pc sampler runs without a corrector unless ``corrector_steps`` is given, as SDEdit's
        Algorithm 1: Langevin steps mix towards p_t and forget x (with the exact score of 2-D
        Gaussian data and VE's default corrector, the correlation of edits at strength 0.6 with x
        fell from 0.65 to 0.00).
        """
        s, y, opts = self.prepare_edit(x, strength, y, options)
        if s <= self.sde.sampling_eps:
            return x.clone()
        if s == 1:
            return self.sample(len(x), generator=generator, y=y, options=opts)
        if opts.sampler == "pc" and opts.corrector_steps is None:
            opts = dataclasses.replace(opts, corrector_steps=0)
        mean, std = self.sde.marginal_prob(self.to_model(x), s)
        x_t = mean + std * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return self.from_model(self.run_sampler(x_t, opts, generator, y, t0=s)).detach()
