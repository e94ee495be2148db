"""Latent diffusion: a VAE whose prior over its latent space is a DDPM.

A hybrid of two families (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent
Diffusion Models", arXiv:2112.10752; Vahdat, Kreis & Kautz 2021, "Score-based Generative Modeling in
Latent Space", LSGM, arXiv:2106.05931): an autoencoder moves the data to a small continuous latent
space, and a diffusion model learns the distribution of the latent codes. Sampling draws z from the
diffusion model and decodes it; every diffusion sampler and sampling option of
:class:`~deepgen.models.diffusion.DDPM` applies to z.

Trained in two stages, as VQ-VAE is (:class:`~deepgen.models.vae.vqvae.VQVAE`), on the command line::

    deepgen train latent-diffusion --data digits --steps 3000 --out runs/ldm-ae
    deepgen train latent-diffusion --data digits -o stage=prior --init-from runs/ldm-ae:autoencoder \\
        --steps 3000 --out runs/ldm
    deepgen sample runs/ldm -n 64 -s sampler=ddim -s steps=50 --out samples.png

1. ``stage=autoencoder``: a :class:`~deepgen.models.vae.VAE` (its options ``latent_dim``, ``arch``,
   ``hidden``, ``channels``, ``beta``, ``kl_warmup``) maximises its ELBO under the N(0, I) prior.
   The KL term keeps the aggregate posterior close to unit scale, so the latents need no rescaling
   (LDM rescales the latents of autoencoders trained without a KL term by their standard deviation).
2. ``stage=prior``: the VAE is frozen (no gradients, eval mode) and a
   :class:`~deepgen.models.diffusion.DDPM` over vectors (a time-conditioned MLP of ``prior_hidden``,
   ``prior_timesteps`` steps, ``prior_schedule``) learns the codes z ~ q(z | x) of the data: samples
   of the posterior, not its means, because they are what the bound below integrates over.

Density (LSGM, eq. 2 with the diffusion's own bound): for any prior p(z),

    log p(x) >= E_q(z|x) [ log p(x | z) + log p(z) - log q(z | x) ]

and DDPM's variational bound B(z) <= log p(z) keeps it a bound when log p(z) is replaced by B(z).
:meth:`elbo` evaluates the bracket at ``k`` posterior draws (the diffusion bound with one noise draw
per term, all T terms), so its mean over examples is an unbiased estimate of a lower bound on
log p(x) in nats. Before stage prior the prior is N(0, I) and the number is the VAE's ELBO. The
diffusion's bound is loose; ``method="ode"`` puts the probability-flow ODE's log-density of z in its
place (exact to the solver's tolerance for up to 16 latent dimensions), a lower bound on log p(x) of
the model whose prior is that ODE, which is what DDIM with eta = 0 samples.

>>> from deepgen.data import DataInfo
>>> m = LatentDiffusion(DataInfo("toy", (6,)), LatentDiffusionConfig(latent_dim=2, hidden=(8,), prior_hidden=(8,),
...                                                                 prior_timesteps=30))
>>> m.loss(torch.randn(5, 6))["loss"].shape, m.elbo(torch.randn(5, 6)).shape
(torch.Size([]), torch.Size([5, 1]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

import torch

from deepgen.data import DataInfo
from deepgen.errors import ConfigError
from deepgen.models.base import DensityKind, GenerativeModel, LogLikelihood, build_optimizer
from deepgen.models.density import mean_with_stderr
from deepgen.models.diffusion.ddpm import DDPM, DDPMConfig, DDPMSampleConfig
from deepgen.models.vae.vae import VAE, VAEConfig
from deepgen.registry import register

LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class LatentDiffusionConfig:
    """Options of :class:`LatentDiffusion`.

    stage: ``autoencoder`` (train the VAE) or ``prior`` (freeze it and train the DDPM over its codes).
    latent_dim, arch, hidden, channels, decoder, beta, kl_warmup: the VAE's options (see ``vae``).
    prior_hidden: hidden sizes of the DDPM's time-conditioned MLP over z.
    prior_timesteps: T of the DDPM over z.
    prior_schedule: its noise schedule, linear or cosine.
    prior_lr: learning rate of stage prior (none: the run's --lr).
    """

    stage: Literal["autoencoder", "prior"] = "autoencoder"
    latent_dim: int = 8
    arch: Literal["auto", "mlp", "conv"] = "auto"
    hidden: tuple[int, ...] = (256, 256)
    channels: tuple[int, ...] = (32, 64)
    decoder: Literal["auto", "bernoulli", "categorical", "logistic", "gaussian"] = "auto"
    beta: float = 1.0
    kl_warmup: int = 0
    prior_hidden: tuple[int, ...] = (256, 256, 256)
    prior_timesteps: int = 1000
    prior_schedule: Literal["linear", "cosine"] = "linear"
    prior_lr: float | None = None

    def __post_init__(self):
        self.vae_config()  # the VAE's and DDPM's own checks, with their messages
        self.ddpm_config()
        if self.prior_lr is not None and not (math.isfinite(self.prior_lr) and self.prior_lr > 0):
            raise ConfigError(f"LatentDiffusionConfig.prior_lr must be a positive number, got {self.prior_lr}")

    def vae_config(self) -> VAEConfig:
        names = {f.name for f in fields(VAEConfig)}
        return VAEConfig(**{f.name: getattr(self, f.name) for f in fields(self) if f.name in names})

    def ddpm_config(self) -> DDPMConfig:
        return DDPMConfig(
            arch="mlp", hidden=self.prior_hidden, timesteps=self.prior_timesteps, schedule=self.prior_schedule
        )


@dataclass(frozen=True)
class LatentDiffusionSampleConfig(DDPMSampleConfig):
    """Sampling options of :class:`LatentDiffusion`: the DDPM's, for z (sampler, steps, eta; see
    ``ddpm``), and ``mean``: decode to E[x | z] instead of drawing x ~ p(x | z)."""

    mean: bool = False


@register("latent-diffusion")
class LatentDiffusion(GenerativeModel):
    """Latent diffusion: a VAE with a DDPM prior over its latent codes (Rombach et al. 2022, arXiv:2112.10752).

    See the module docstring. Submodules: ``autoencoder`` (a :class:`~deepgen.models.vae.VAE` on the
    data) and ``prior`` (a :class:`~deepgen.models.diffusion.DDPM` on ``latent_dim``-vectors).
    ``stage`` chooses which of the two trains; the other has ``requires_grad`` False and is left out
    of the optimiser.
    """

    family = "hybrid"
    Config = LatentDiffusionConfig
    SampleConfig = LatentDiffusionSampleConfig
    density_summary = (
        "lower bound: E_q[log p(x|z) + DDPM bound on log p(z) - log q(z|x)] (VAE ELBO before stage prior); "
        "method ode: the same with the probability-flow log-density of z"
    )
    likelihood_methods = ("ode",)
    training_stages = (({"stage": "autoencoder"}, None), ({"stage": "prior"}, "autoencoder"))
    train_defaults = {"ema_decay": 0.999, "grad_clip": 1.0}
    eval_examples = 500
    eval_samples = 1000
    test_options = {
        "latent_dim": 2,
        "hidden": (16,),
        "channels": (4, 8),
        "prior_hidden": (16,),
        "prior_timesteps": 10,
        "prior_schedule": "cosine",
    }
    test_sample_options = {"sampler": "ddim", "steps": 3}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        self.autoencoder = VAE(info, cfg.vae_config())
        # counts the autoencoder's training steps, inside the submodule that --init-from copies, so
        # that stage prior can tell a trained autoencoder from a fresh one
        self.autoencoder.register_buffer("trained_steps", torch.zeros((), dtype=torch.long))
        self.latent_info = DataInfo(f"{info.name} latents", (cfg.latent_dim,))
        self.prior = DDPM(self.latent_info, cfg.ddpm_config())
        frozen = self.autoencoder if cfg.stage == "prior" else self.prior
        frozen.requires_grad_(False)

    @property
    def density_kind(self) -> DensityKind:
        return DensityKind.BOUND

    def why_no_density(self) -> str:
        return "p(x) integrates p(x|z) p(z) over z, and p(z) is itself a diffusion model's marginal"

    def train(self, mode: bool = True):
        """Training mode for the stage being trained; the frozen stage stays in eval mode."""
        super().train(mode)
        (self.autoencoder if self.config.stage == "prior" else self.prior).train(False)
        return self

    def initialize(self, x: torch.Tensor) -> None:
        """Refuse stage prior over an autoencoder that never trained (a prior over the codes of a
        random encoder learns nothing useful): start it with --init-from RUN:autoencoder."""
        if self.config.stage == "prior" and int(self.autoencoder.trained_steps) == 0:
            raise ConfigError(
                f"{self.name}: stage=prior trains a DDPM over the codes of a trained autoencoder; start it "
                f"from one: deepgen train {self.name} -o stage=prior --init-from RUN:autoencoder (RUN: a "
                "stage autoencoder run with the same autoencoder options)"
            )

    def posterior_draws(self, x: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` draws z ~ q(z | x) per example, (k, B, latent_dim), and their log q(z | x), (k, B)."""
        mu, logvar = self.autoencoder.posterior(x)
        eps = torch.randn((k, *mu.shape), dtype=mu.dtype, device=mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps
        log_q = -0.5 * (eps.pow(2) + logvar + LOG_2PI).sum(-1)
        return z, log_q

    def loss(self, x, y=None):
        if self.config.stage == "autoencoder":
            if self.training and torch.is_grad_enabled():
                self.autoencoder.trained_steps += 1
            return self.autoencoder.loss(x)
        with torch.no_grad():
            z = self.posterior_draws(x)[0][0]
        return self.prior.loss(z)

    def configure_optimizers(self, cfg):
        """One Adam over the stage being trained (the other part is frozen)."""
        trainable = [p for p in self.parameters() if p.requires_grad]
        lr = self.config.prior_lr if self.config.stage == "prior" else None
        return {"main": build_optimizer(trainable, cfg, lr=lr)}

    # -- density ------------------------------------------------------------------------------------
    def prior_log_prob_bound(
        self, z: torch.Tensor, strata: int | None = None, method: str | None = None
    ) -> torch.Tensor:
        """(B,) log p(z) or a lower bound on it: in stage prior the DDPM's variational bound (``strata``
        as :meth:`DDPM.bound`), or with ``method="ode"`` the probability-flow ODE's log-density (exact
        to the solver's tolerance in <= 16 dimensions: the density of the model that DDIM with eta 0
        samples); the exact N(0, I) log-density before stage prior."""
        if self.config.stage != "prior":
            return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
        if method == "ode":
            return self.prior.log_likelihood(z, method="ode").values.to(z.dtype)
        return -self.prior.bound(z, strata=strata)

    @torch.no_grad()
    def elbo(self, x: torch.Tensor, k: int = 1, strata: int | None = None, method: str | None = None) -> torch.Tensor:
        """(B, k) the bound's integrand at k posterior draws: log p(x|z) + B(z) - log q(z|x), nats
        (B(z): see :meth:`prior_log_prob_bound`)."""
        self.check_input(x)
        z, log_q = self.posterior_draws(x, k)
        terms = [
            self.autoencoder.decoder_log_prob(x, z[i]) + self.prior_log_prob_bound(z[i], strata, method) - log_q[i]
            for i in range(k)
        ]
        return torch.stack(terms, 1)

    def log_likelihood(self, x, *, y=None, k=None, method=None) -> LogLikelihood:
        """The ELBO with the DDPM's bound on log p(z) (default) or, with ``method="ode"``, with the
        probability-flow log-density of z; ``k`` posterior draws (mean and standard error when > 1)."""
        self.check_method(method)
        k = k or 1
        if self.config.stage != "prior":
            prior = "the N(0, I) prior"
        elif method == "ode":
            prior = "log p(z) by the DDPM's probability-flow ODE"
        else:
            prior = f"log p(z) by the DDPM's bound over T={self.config.prior_timesteps} steps"
        text = f"ELBO, {prior}, {k} posterior draw{'s' if k > 1 else ''}"
        draws = self.elbo(x, k, method=method)
        if k == 1:
            return LogLikelihood(draws[:, 0], DensityKind.BOUND, text)
        mean, se = mean_with_stderr(draws)
        return LogLikelihood(mean.to(x.dtype), DensityKind.BOUND, text, se)

    @torch.no_grad()
    def evaluate(self, x, y=None):
        """Held-out bound with the diffusion bound estimated from ``eval_timesteps`` strata (unbiased)."""
        nll = -self.elbo(x, 1, strata=self.prior.eval_timesteps).double().mean().item()
        out = {"nll": nll + (0.0 if self.info.is_discrete else self.info.log_scale)}
        if self.info.is_discrete:
            from deepgen.metrics.likelihood import bits_per_dim

            out["bpd"] = bits_per_dim(nll, self.info.dim)
        return out

    # -- sampling -----------------------------------------------------------------------------------
    @classmethod
    def describe_sampling(cls, options=None) -> str:
        o = options or cls.SampleConfig()
        decode = "E[x|z]" if o.mean else "x ~ p(x|z)"
        return f"z from the prior (stage prior: DDPM, {DDPM.describe_sampling(o)}), {decode}"

    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        """z from the DDPM prior (N(0, I) before stage prior), then x ~ p(x | z) or its mean."""
        if self.config.stage == "prior":
            ddpm_opts = {f.name: getattr(options, f.name) for f in fields(DDPMSampleConfig)}
            z = self.prior.sample(n, generator=generator, **ddpm_opts)
        else:
            z = torch.randn(n, self.config.latent_dim, generator=generator, device=self.device)
        params = self.autoencoder.decoder(z)
        head = self.autoencoder.likelihood
        return head.mean(params) if options.mean else head.sample(params, generator)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, stage={self.config.stage}, latent_dim={self.config.latent_dim}"
