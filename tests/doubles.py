"""Test doubles for contracts no real model exercises yet: a conditional density model with sampling
options and completion, an unnormalised energy model sampled by Langevin dynamics, and a flow.

They are registered for the whole test session (``tests/conftest.py`` imports this module), so the
registry harness in ``tests/models/test_registry_models.py`` runs every generic test on them too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from deepgen.bijectors import Affine, Compose, RandomPermutation
from deepgen.models.base import DensityKind, GenerativeModel, LogLikelihood
from deepgen.models.density import ContinuousDensityModel
from deepgen.models.flows import Flow
from deepgen.registry import register
from deepgen.samplers import langevin, score_from_log_prob


@dataclass(frozen=True)
class CondSampleOptions:
    """Sampling options of :class:`ClassGaussian`.

    temperature: scale of the per-class standard deviation (0 gives each class's mean).
    """

    temperature: float = 1.0

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")


@register("test-class-gaussian")
class ClassGaussian(ContinuousDensityModel):
    """Class-conditional diagonal Gaussian p(x | y) (a conditional test double; Bishop 2006, sec. 4.2)."""

    family = "baseline"
    conditional = True
    SampleConfig = CondSampleOptions

    def __init__(self, info, config=None):
        super().__init__(info, config)
        c = info.num_classes
        self.mean = nn.Parameter(torch.full((c, info.dim), 0.5 if info.is_discrete else 0.0))
        self.log_std = nn.Parameter(torch.full((c, info.dim), -1.0))

    def log_density(self, v, y=None):
        m, s = self.mean[y], self.log_std[y]
        z = (v.flatten(1) - m) / torch.exp(s)
        return (-0.5 * z.pow(2) - s - 0.5 * math.log(2 * math.pi)).sum(1)

    def _sample(self, n, options, *, generator, y):
        eps = torch.randn(n, self.info.dim, generator=generator, device=self.device)
        v = self.mean[y] + options.temperature * torch.exp(self.log_std[y]) * eps
        return self.from_continuous(v.view(n, *self.info.shape))

    def complete(self, x, mask, *, generator=None, y=None, **options):
        y = self.check_labels(y, len(x), draw=False)
        fill = self.sample(len(x), generator=generator, y=y, **options)
        return torch.where(mask, x, fill)  # dimensions are independent given y: exact conditionals


@dataclass(frozen=True)
class EnergyConfig:
    """Options of :class:`QuadraticEnergy`.

    langevin_steps: Langevin steps per sample.
    """

    langevin_steps: int = 200


@dataclass(frozen=True)
class EnergySampleOptions:
    """Sampling options of :class:`QuadraticEnergy`.

    steps: Langevin steps (default: the model's ``langevin_steps``).
    step_size: Langevin step size.
    """

    steps: int | None = None
    step_size: float = 0.01


@register("test-energy")
class QuadraticEnergy(GenerativeModel):
    """E(x) = ||(x - mu) / s||^2 / 2, trained by denoising score matching (Vincent 2011), sampled by Langevin."""

    family = "energy"
    Config = EnergyConfig
    SampleConfig = EnergySampleOptions
    density_summary = "unnormalised (-E(x))"
    test_sample_options = {"steps": 20}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        self.mu = nn.Parameter(torch.zeros(info.shape))
        self.log_s = nn.Parameter(torch.zeros(info.shape))

    @property
    def density_kind(self):
        return DensityKind.UNNORMALISED

    def why_no_density(self):
        return "an energy-based model's partition function Z is unknown"

    def energy(self, x):
        return 0.5 * ((x - self.mu) / torch.exp(self.log_s)).pow(2).flatten(1).sum(1)

    def loss(self, x, y=None):
        sigma = 0.1
        noise = torch.randn_like(x) * sigma
        xt = (x + noise).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.energy(xt).sum(), xt, create_graph=True)
        loss = (-grad + noise / sigma**2).pow(2).flatten(1).sum(1).mean() * sigma**2
        return {"loss": loss / self.info.dim}

    def log_likelihood(self, x, *, y=None, k=None, method=None):
        self.check_method(method)
        self.check_labels(y, len(x), draw=False)
        return LogLikelihood(-self.energy(x), DensityKind.UNNORMALISED, "-E(x)")

    def _sample(self, n, options, *, generator, y):
        x0 = torch.randn((n, *self.info.shape), generator=generator, device=self.device)
        score = score_from_log_prob(lambda x: -self.energy(x))  # enables grad itself: works under no_grad
        x = langevin(x0, score, options.step_size, options.steps or self.config.langevin_steps, generator=generator)
        return self.to_data_space(x)


@dataclass(frozen=True)
class StackedAffineConfig:
    """Options of :class:`StackedAffine`.

    layers: number of per-dimension affine layers.
    """

    layers: int = 2


@register("test-stacked-affine")
class StackedAffine(Flow):
    """A flow double: logit for discrete data, then affines between seeded permutations (Dinh et al. 2017)."""

    Config = StackedAffineConfig

    def build_bijector(self):  # data -> latent; sampling runs it backwards
        layers = [self.preprocess(self.info)]
        for i in range(self.config.layers):
            layers += [Affine(self.info.shape), RandomPermutation(self.info.shape[0], generator=i)]
        return Compose(*layers)


@dataclass(frozen=True)
class SignalMLPConfig:
    """Options of :class:`SignalMLP`.

    hidden: width of the two hidden layers.
    """

    hidden: int = 32


@dataclass(frozen=True)
class SignalSampleOptions:
    """Sampling options of :class:`SignalMLP`.

    scale: render at ``scale`` times the native resolution.
    """

    scale: int = 1


@register("test-signal-mlp")
class SignalMLP(GenerativeModel):
    """A signal double: a ReLU MLP fitted to coordinates -> values (the baseline of Sitzmann et al. 2020)."""

    family = "implicit"
    Config = SignalMLPConfig
    SampleConfig = SignalSampleOptions
    data_kinds = ("signal",)
    density_summary = "none (a fitted function)"

    def __init__(self, info, config=None):
        super().__init__(info, config)
        h = self.config.hidden
        d, c = len(info.grid), info.shape[0]
        self.net = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, c))

    def predict(self, x):
        """Values (N, C) at coordinates x (N, d)."""
        return self.net(x)

    def loss(self, x, y=None):
        return {"loss": (self.predict(x) - y[:, : self.info.channels]).pow(2).mean()}  # y: values, derivatives

    def _sample(self, n, options, *, generator, y):
        from deepgen.data.signals import coordinate_grid, rows_to_values

        res = tuple(g * options.scale for g in self.info.grid)
        img = rows_to_values(self.predict(coordinate_grid(res).to(self.device)), res)
        return img.unsqueeze(0).expand(n, *img.shape)  # a fitted signal: every sample is the same
