"""Noise-conditional score networks (NCSN; Song & Ermon 2019, arXiv:1907.05600, and the improved
techniques of Song & Ermon 2020, arXiv:2006.09011) trained by denoising or sliced score matching
and sampled by annealed Langevin dynamics.

A network estimates the score s(x, sigma) ~ grad_x log p_sigma(x) of the data convolved with
N(0, sigma^2 I), for L noise levels sigma_1 > ... > sigma_L in geometric progression. As in NCSNv2
the output is divided by sigma, ``s(x, sigma) = f(x, sigma) / sigma`` (their technique 3), and
sigma_1 defaults to the largest distance between training examples (technique 1, from the first
batch). Objectives, each weighted by lambda(sigma) = sigma^2 (their eq. 6) and averaged over the
levels:

* ``dsm``, denoising score matching (Vincent 2011): with x~ = x + sigma z,
  ``1/2 |sigma s(x~, sigma) + z|^2 = 1/2 |f(x~, sigma) + z|^2``;
* ``ssm``, sliced score matching (Song, Garg, Shi & Ermon 2019, arXiv:1905.07088), the
  variance-reduced form on the perturbed data: ``v^T grad_x (v^T s) + 1/2 |s|^2`` with Gaussian
  projections v, so no noise target is needed (one extra backward pass through the network).

Sampling: :func:`deepgen.samplers.annealed_langevin` (their Algorithm 1) with T steps per level and
step ``eps sigma_i^2 / sigma_L^2``, ending with the Tweedie denoising step (NCSNv2). Starting
points: uniform noise on images (the papers), N(0, sigma_1^2 I) on vectors.

Density: none. An NCSN learns scores at L fixed noise levels, not a density; its continuous-noise
limit is the VE SDE, whose probability-flow likelihood ``score-sde -o sde=ve`` reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from deepgen.errors import ConfigError
from deepgen.models.base import DensityKind
from deepgen.models.diffusion.base import DenoiserOptions, DiffusionModel, with_shared_docs
from deepgen.registry import register
from deepgen.samplers import annealed_langevin


@with_shared_docs
@dataclass(frozen=True)
class NCSNConfig(DenoiserOptions):
    """Options of :class:`NCSN`.

    levels: L, the number of noise levels.
    sigma_max: sigma_1 (None: the largest pairwise distance in the first training batch, NCSNv2).
    sigma_min: sigma_L (the papers' 0.01).
    objective: dsm (denoising) or ssm (sliced, variance-reduced) score matching.
    """

    levels: int = 10
    sigma_max: float | None = None
    sigma_min: float = 0.01
    objective: Literal["dsm", "ssm"] = "dsm"

    def __post_init__(self):
        super().__post_init__()
        if self.levels < 2:
            raise ConfigError(f"NCSNConfig.levels must be >= 2, got {self.levels}")
        if not (math.isfinite(self.sigma_min) and self.sigma_min > 0):
            raise ConfigError(f"NCSNConfig.sigma_min must be > 0, got {self.sigma_min}")
        if self.sigma_max is not None and not self.sigma_max > self.sigma_min:
            raise ConfigError(f"NCSNConfig.sigma_max must exceed sigma_min, got {self.sigma_max}")


@dataclass(frozen=True)
class NCSNSampleConfig:
    """Sampling options of :class:`NCSN`.

    steps_per_level: T, Langevin steps at each noise level (NCSN: 100; NCSNv2 uses 5).
    eps: step size at the smallest level (NCSN: 2e-5 with sigma_L = 0.01).
    denoise: finish with the Tweedie step x + sigma_L^2 s(x, sigma_L).
    """

    steps_per_level: int = 100
    eps: float = 2e-5
    denoise: bool = True

    def __post_init__(self):
        if self.steps_per_level < 1:
            raise ConfigError(f"steps_per_level must be >= 1, got {self.steps_per_level}")
        if not (math.isfinite(self.eps) and self.eps > 0):
            raise ConfigError(f"eps must be a finite number > 0, got {self.eps}")


@register("ncsn")
class NCSN(DiffusionModel):
    """NCSN (Song & Ermon 2019/2020): noise-conditional scores by denoising or sliced score matching,
    annealed Langevin sampling. Shares the diffusion models' networks (U-Net for images, MLP
    otherwise) and data scaling. Buffer ``sigmas`` (L,), largest first; ``score(x, sigma)``.
    """

    family = "energy"
    Config = NCSNConfig
    SampleConfig = NCSNSampleConfig
    density_summary = "none (scores at L noise levels; score-sde -o sde=ve is its continuous-time version)"
    train_defaults = {"lr": 5e-4, "grad_clip": 1.0, "ema_decay": 0.999}
    loss_units = "score matching loss per dimension"
    test_options = {"levels": 4, "channels": (8, 16), "layers_per_block": 1, "hidden": (32, 32)}
    test_sample_options = {"steps_per_level": 2}
    eval_examples = None

    def __init__(self, info, config=None):
        super().__init__(info, config)
        self.net = self.build_network(1)
        cfg = self.config
        self.register_buffer("sigmas", self.geometric(cfg.sigma_max or 1.0))

    def geometric(self, sigma_max: float) -> torch.Tensor:
        """L levels from sigma_max down to sigma_min, geometric."""
        cfg = self.config
        return torch.exp(torch.linspace(math.log(sigma_max), math.log(cfg.sigma_min), cfg.levels))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """sigma_1 = the largest pairwise distance of the first batch (NCSNv2's technique 1), unless set."""
        if self.config.sigma_max is None:
            v = self.to_model(x).flatten(1).double()
            d = torch.cdist(v, v).max().item()
            self.sigmas.copy_(self.geometric(max(d, 2 * self.config.sigma_min)))

    # -- the score ----------------------------------------------------------------------------------
    def net_time(self, sigma: torch.Tensor) -> torch.Tensor:
        """sigma (B,) -> the network's time: log sigma mapped linearly onto 0 (sigma_L) .. 999 (sigma_1)."""
        lo, hi = math.log(float(self.sigmas[-1])), math.log(float(self.sigmas[0]))
        return (sigma.double().log() - lo) / (hi - lo) * 999.0

    def score(self, x: torch.Tensor, sigma: torch.Tensor, y=None) -> torch.Tensor:
        """s(x, sigma) = f(x, sigma) / sigma, for sigma (B,) in the model's space."""
        f = self.network(x, self.net_time(sigma), y)[0]
        return f / sigma.to(f.dtype).view(-1, *([1] * (x.dim() - 1)))

    # -- training -----------------------------------------------------------------------------------
    def loss(self, x, y=None, *, levels=None, noise=None):
        """The sigma^2-weighted score-matching loss, one random level per example (``levels`` fixes them)."""
        x0 = self.to_model(x)
        n = len(x0)
        idx = torch.randint(0, self.config.levels, (n,), device=x0.device) if levels is None else levels
        sigma = self.sigmas[idx].to(x0.dtype)
        s = sigma.view(-1, *([1] * (x0.dim() - 1)))
        z = torch.randn_like(x0) if noise is None else noise
        x_t = x0 + s * z
        yl = self.training_labels(y, n)
        if self.config.objective == "dsm":
            per = 0.5 * (self.network(x_t, self.net_time(sigma), yl)[0] + z).pow(2).flatten(1).sum(1)
        else:
            per = self.sliced_loss(x_t, sigma, yl)
        loss = per.mean() / self.info.dim
        return {"loss": loss, "mse": loss.detach()}

    def sliced_loss(self, x_t, sigma, y) -> torch.Tensor:
        """sigma^2 (v^T grad_x (v^T s) + 1/2 |s|^2) per example (SSM-VR, Gaussian v)."""
        with torch.enable_grad():
            x_t = x_t.detach().requires_grad_(True)
            s = self.score(x_t, sigma, y)
            v = torch.randn_like(x_t)
            (g,) = torch.autograd.grad((s * v).sum(), x_t, create_graph=True)
        per = (g * v).flatten(1).sum(1) + 0.5 * s.pow(2).flatten(1).sum(1)
        return sigma.to(per.dtype) ** 2 * per

    @torch.no_grad()
    def evaluate(self, x, y=None):
        """Held-out loss, with every level equally represented (levels cycled over the batch)."""
        y = y if self.conditional else None
        levels = torch.arange(len(x), device=x.device) % self.config.levels
        return {"loss": self.loss(x, y, levels=levels)["loss"].item()}  # ssm takes its gradient inside

    # -- density ------------------------------------------------------------------------------------
    @property
    def density_kind(self) -> DensityKind:
        return DensityKind.NONE

    def why_no_density(self) -> str:
        return (
            "an NCSN learns scores at fixed noise levels, not a density; its continuous-noise version, "
            "score-sde -o sde=ve, has a probability-flow likelihood"
        )

    # -- sampling -----------------------------------------------------------------------------------
    @classmethod
    def describe_sampling(cls, options=None) -> str:
        o = options or cls.SampleConfig()
        return f"annealed Langevin, {o.steps_per_level} steps per level, eps={o.eps:g}" + (
            "" if o.denoise else ", no denoising step"
        )

    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        dev, shape = self.device, (n, *self.info.shape)
        if self.info.is_discrete:
            x0 = 2 * torch.rand(shape, generator=generator, device=dev) - 1
        else:
            x0 = float(self.sigmas[0]) * torch.randn(shape, generator=generator, device=dev)
        x = annealed_langevin(
            x0,
            lambda v, sigma: self.score(v, sigma, y),
            self.sigmas,
            options.steps_per_level,
            options.eps,
            denoise_last=options.denoise,
            generator=generator,
        )
        return self.from_model(x).detach()
