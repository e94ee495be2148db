"""Reference models with closed-form densities, so every comparison has a baseline row.

* ``independent``: each dimension independent -- Bernoulli for binary data, categorical over the L
  levels for discrete data, a diagonal Gaussian for continuous data. The simplest exact model: the
  number every deep model must beat.
* ``gmm``: a Gaussian mixture (full or diagonal covariance) trained by gradient descent on the exact
  log-likelihood (Bishop, Pattern Recognition and Machine Learning, 2006, ch. 9).

Both initialise from the first batch (the trainer's ``initialize`` hook), which is already close to
the maximum-likelihood solution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from deepgen.config import check_positive
from deepgen.distributions import LOG_2PI
from deepgen.models.base import DensityKind, LogLikelihood
from deepgen.models.density import ContinuousDensityModel
from deepgen.nn import likelihood_head
from deepgen.registry import register


@dataclass(frozen=True)
class IndependentConfig:
    """Options of :class:`Independent`.

    Attributes:
        likelihood: auto picks bernoulli (binary), categorical (discrete) or gaussian (continuous).
    """

    likelihood: Literal["auto", "bernoulli", "categorical", "gaussian"] = "auto"


@register("independent")
class Independent(ContinuousDensityModel):
    """Fully factorised p(x) = prod_d p(x_d): Bernoulli, categorical or diagonal Gaussian.

    Exact on discrete data (Bernoulli/categorical); a Gaussian on discrete data is a continuous
    density and reports the dequantisation bound. The per-dimension likelihood is the shared
    :func:`deepgen.nn.likelihood_head` fed with learned parameters broadcast over the batch
    (``logits`` for Bernoulli (shape) and categorical (L, *shape); ``mean`` and ``log_std`` for the
    Gaussian). Sampling has no options: the baseline samples its own density.

    >>> from deepgen.data import DataInfo
    >>> m = Independent(DataInfo("digits", (1, 8, 8), 17))
    >>> m.log_prob(torch.zeros(4, 1, 8, 8)).shape
    torch.Size([4])
    """

    family = "baseline"
    Config = IndependentConfig
    density_summary = "exact (a Gaussian on discrete data: dequantisation bound)"
    train_defaults = {"lr": 1e-2}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        lik = self.config.likelihood
        if lik == "auto":
            lik = "gaussian" if not info.is_discrete else ("bernoulli" if info.is_binary else "categorical")
        # the log-std is a parameter of this model (``log_std``), handed to the head unfloored
        self.likelihood = likelihood_head(info, lik, model=self.name, std="per-example", min_log_std=None)
        if lik == "bernoulli":
            self.logits = nn.Parameter(torch.zeros(info.shape))
        elif lik == "categorical":
            self.logits = nn.Parameter(torch.zeros(info.levels, *info.shape))
        else:
            self.mean = nn.Parameter(torch.full(info.shape, 0.5 if info.is_discrete else 0.0))
            self.log_std = nn.Parameter(torch.zeros(info.shape))

    @property
    def discrete_likelihood(self) -> bool:
        return self.likelihood.is_mass

    @property
    def density_kind(self) -> DensityKind:
        return DensityKind.EXACT if self.discrete_likelihood else super().density_kind

    def params(self) -> torch.Tensor:
        """The head's parameters, (1, P, *shape): one set shared by every example."""
        if self.discrete_likelihood:
            return self.logits.unsqueeze(0)
        return torch.stack([self.mean, self.log_std]).unsqueeze(0)

    @torch.no_grad()
    def initialize(self, x):
        kind = self.likelihood.kind
        if kind == "bernoulli":
            p = x.mean(0).clamp(0.01, 0.99)
            self.logits.copy_(torch.log(p) - torch.log1p(-p))
        elif kind == "categorical":
            k = torch.round(x * (self.info.levels - 1)).long()
            counts = torch.nn.functional.one_hot(k, self.info.levels).sum(0).movedim(-1, 0).float()
            self.logits.copy_(torch.log(counts + 1.0))
        else:
            y, _ = self.to_continuous(x)
            self.mean.copy_(y.mean(0))
            self.log_std.copy_(torch.log(y.std(0).clamp_min(1e-3)))

    def log_density(self, v, y=None):
        return self.likelihood.log_density(self.params(), v)

    def log_prob(self, x, y=None):
        if self.discrete_likelihood:
            return self.likelihood.log_prob(self.params(), x)
        return super().log_prob(x, y)

    def log_likelihood(self, x, *, y=None, k=None, method=None):
        if self.discrete_likelihood:
            self.check_method(method)
            self.check_labels(y, len(x), draw=False)
            return LogLikelihood(self.log_prob(x), DensityKind.EXACT, "exact")
        return super().log_likelihood(x, y=y, k=k, method=method)

    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        return self.likelihood.sample(self.params(), generator, n=n)


@dataclass(frozen=True)
class GMMConfig:
    """Options of :class:`GaussianMixture`.

    Attributes:
        components: mixture size K.
        covariance: full, diag, or auto (full up to 64 dimensions).
        min_std: floor added to every component's standard deviations.
    """

    components: int = 10
    covariance: Literal["auto", "full", "diag"] = "auto"
    min_std: float = 1e-3

    def __post_init__(self):
        check_positive(self, "components", "min_std")


@dataclass(frozen=True)
class GMMSampleConfig:
    """Sampling options of :class:`GaussianMixture`.

    Attributes:
        temperature: scale of each component's standard deviations (1 samples the model; below 1
            draws closer to the component means, as Glow's temperature, Kingma & Dhariwal, 2018,
            arXiv:1807.03039).
    """

    temperature: float = 1.0

    def __post_init__(self):
        check_positive(self, "temperature")


@register("gmm")
class GaussianMixture(ContinuousDensityModel):
    """Gaussian mixture p(x) = sum_k pi_k N(x | mu_k, Sigma_k), fitted by SGD on the exact NLL.

    Full covariances are parameterised by a Cholesky factor with a softplus diagonal. Means start at
    K distinct points of the first batch.
    """

    family = "baseline"
    Config = GMMConfig
    SampleConfig = GMMSampleConfig
    test_options = {"components": 3}
    train_defaults = {"lr": 1e-2}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        d, k = info.dim, self.config.components
        cov = self.config.covariance
        self.full = cov == "full" or (cov == "auto" and d <= 64)
        self.logits = nn.Parameter(torch.zeros(k))
        self.means = nn.Parameter(torch.randn(k, d) * 0.1)
        self.raw_diag = nn.Parameter(torch.zeros(k, d))
        if self.full:
            self.lower = nn.Parameter(torch.zeros(k, d, d))
        self.register_buffer("_tril_mask", torch.tril(torch.ones(d, d), -1), persistent=False)

    def _scale_tril(self) -> torch.Tensor:
        diag = torch.nn.functional.softplus(self.raw_diag) + self.config.min_std
        if not self.full:
            return diag
        return self.lower * self._tril_mask + torch.diag_embed(diag)

    @torch.no_grad()
    def initialize(self, x):
        y, _ = self.to_continuous(x)
        y = y.flatten(1)
        idx = torch.randperm(len(y))[: self.config.components]
        self.means[: len(idx)].copy_(y[idx])
        std = 0.5 * y.std(0).clamp_min(1e-2)  # narrower than the data: components start apart
        self.raw_diag.copy_(torch.log(torch.expm1(std)).expand_as(self.raw_diag))

    def log_density(self, v, y=None):
        """Mixture log-density at v (B, *shape) in the continuous space, (B,) nats."""
        y = v.flatten(1)
        L = self._scale_tril()
        diff = y.unsqueeze(1) - self.means  # (B, K, D)
        if self.full:
            sol = torch.linalg.solve_triangular(L, diff.permute(1, 2, 0), upper=False)  # (K, D, B)
            maha = sol.pow(2).sum(1).T
            logdet = torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
        else:
            maha = (diff / L).pow(2).sum(-1)
            logdet = torch.log(L).sum(-1)
        comp = -0.5 * maha - logdet - 0.5 * y.shape[1] * LOG_2PI
        return torch.logsumexp(comp + torch.log_softmax(self.logits, 0), 1)

    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        k = torch.multinomial(torch.softmax(self.logits, 0), n, replacement=True, generator=generator)
        eps = options.temperature * torch.randn(n, self.info.dim, generator=generator, device=self.device)
        L = self._scale_tril()[k]
        y = self.means[k] + (torch.einsum("nij,nj->ni", L, eps) if self.full else L * eps)
        return self.from_continuous(y.view(n, *self.info.shape))
