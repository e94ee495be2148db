"""Data-likelihood heads: turn network outputs into p(x | params), factorised over dimensions.

One head per likelihood, chosen from the data by :func:`likelihood_head`, shared by every model
that outputs per-dimension parameters (the independent baseline, VAE decoders, autoregressive
outputs). A head lives in ``nn/`` rather than :mod:`deepgen.distributions` because it may own
parameters (the Gaussian's shared log-std) and knows the data's shape and levels; the pure
per-dimension formulas stay in :mod:`deepgen.distributions`.

================  ===  =========================================================================
head              P    log_prob on the data
================  ===  =========================================================================
bernoulli         1    exact mass on {0, 1} (logits)
categorical       L    exact mass on L levels (logits; one log-softmax, then a gather)
logistic          2    exact mass: discretised logistic (Salimans et al., 2017, PixelCNN++,
                       arXiv:1701.05517), unconstrained mean so the edge bins can take all the mass
logistic-mixture  3K   exact mass: a mixture of K discretised logistics per dimension (PixelCNN++;
                       K weight logits, K means, K log-scales), without PixelCNN++'s linear
                       coupling of the R, G, B means: channels are independent given the params
gaussian          1/2  a density on continuous data; on discrete data the density of the uniformly
                       dequantised point minus D log L, a one-sample lower bound (Theis et al., 2016,
                       arXiv:1511.01844)
================  ===  =========================================================================

Parameters: a network emits ``P`` numbers per data dimension, as (B, P * D) for vectors or
(B, P * C, H, W) for images (parameter-major: all means, then all scales); :meth:`LikelihoodHead.split`
views them as (B, P, *shape). A batch of 1 broadcasts over the data (an unconditional baseline).

>>> from deepgen.data import DataInfo
>>> head = likelihood_head(DataInfo("digits", (1, 8, 8), 17))
>>> head.kind, head.params_per_dim, head.is_mass
('logistic', 2, True)
>>> head.log_prob(torch.zeros(4, 2, 8, 8), torch.zeros(4, 1, 8, 8)).shape
torch.Size([4])
>>> mix = likelihood_head(DataInfo("digits", (1, 8, 8), 17), "logistic-mixture", components=3)
>>> mix.params_per_dim, mix.log_prob(torch.zeros(4, 9, 8, 8), torch.zeros(4, 1, 8, 8)).shape
(9, torch.Size([4]))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.data.base import DataInfo
from deepgen.data.transforms import dequantize, quantize
from deepgen.distributions import (
    bernoulli_log_prob,
    discretized_logistic_log_prob,
    discretized_logistic_mixture_log_prob,
    discretized_logistic_mixture_sample,
    discretized_logistic_sample,
    gaussian_log_prob,
)
from deepgen.errors import ConfigError, DataError

HEADS = ("auto", "bernoulli", "categorical", "logistic", "logistic-mixture", "gaussian")


class LikelihoodHead(nn.Module):
    """p(x | params) = prod_d p(x_d | params_d); subclasses set ``kind``, ``is_mass``, ``params_per_dim``.

    Attributes:
        kind: the head's name (``"bernoulli"``, ...).
        is_mass: True when ``log_prob`` is an exact log probability mass on the data's lattice;
            False for a density (Gaussian), which on discrete data is a dequantisation bound.
        params_per_dim: P, the network outputs per data dimension.
    """

    kind = "?"
    is_mass = True
    params_per_dim = 1

    def __init__(self, info: DataInfo):
        super().__init__()
        self.info = info

    @property
    def is_bound(self) -> bool:
        """Whether ``log_prob`` on this data is a (one-sample) lower bound rather than exact."""
        return not self.is_mass and self.info.is_discrete

    def split(self, params: torch.Tensor) -> torch.Tensor:
        """(B, P * D) or (B, P * C, H, W) -> (B, P, *shape), parameter-major."""
        return params.reshape(params.shape[0], self.params_per_dim, *self.info.shape)

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x | params), (B,) nats, for x (B, *shape) in data space."""
        raise NotImplementedError

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None, n: int | None = None):
        """x ~ p(x | params), (B, *shape) in data space (on the lattice for discrete data).

        ``n``: number of draws when ``params`` has a batch of 1 (an unconditional baseline).
        """
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """E[x | params], (B, *shape), in data space (in [0, 1] for discrete data, not on the lattice)."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"kind={self.kind}, params_per_dim={self.params_per_dim}"

    def _expand(self, t: torch.Tensor, n: int | None) -> torch.Tensor:
        return t if n is None else t.expand(n, *t.shape[1:])


class BernoulliHead(LikelihoodHead):
    """Bernoulli(sigmoid(logit)) per dimension for binary data (values 0/1)."""

    kind = "bernoulli"

    def log_prob(self, params, x):
        return bernoulli_log_prob(self.split(params)[:, 0].expand_as(x), x)

    def sample(self, params, generator=None, n=None):
        p = torch.sigmoid(self._expand(self.split(params)[:, 0], n))
        return torch.bernoulli(p, generator=generator)

    def mean(self, params):
        return torch.sigmoid(self.split(params)[:, 0])


class CategoricalHead(LikelihoodHead):
    """Softmax over the L levels per dimension: L logits per dimension (levels on axis 1 of ``split``)."""

    kind = "categorical"

    def __init__(self, info):
        super().__init__(info)
        self.params_per_dim = info.levels

    def log_prob(self, params, x):
        levels = self.info.levels
        logp = torch.log_softmax(self.split(params), 1).reshape(len(params), levels, -1)  # (B or 1, L, D)
        k = torch.round(x.reshape(len(x), -1) * (levels - 1)).long()  # (B, D)
        if len(logp) == 1:  # one shared table: index it, never expand it to (B, L, D)
            return logp[0][k, torch.arange(k.shape[1], device=k.device)].sum(1)
        return torch.gather(logp, 1, k.unsqueeze(1)).squeeze(1).sum(1)

    def sample(self, params, generator=None, n=None):
        levels, p = self.info.levels, self.split(params)
        probs = torch.softmax(p, 1).movedim(1, -1).reshape(-1, levels)  # (B * D, L)
        if n is not None and len(p) == 1:  # n draws per dimension from the shared table
            k = torch.multinomial(probs, n, replacement=True, generator=generator).T  # (n, D)
        else:
            k = torch.multinomial(probs, 1, generator=generator)
        return k.reshape(-1, *self.info.shape).float() / (levels - 1)

    def mean(self, params):
        levels = self.info.levels
        values = torch.arange(levels, device=params.device, dtype=params.dtype) / (levels - 1)
        probs = torch.softmax(self.split(params), 1)
        return (probs * values.view(1, levels, *[1] * len(self.info.shape))).sum(1)


class LogisticHead(LikelihoodHead):
    """Discretised logistic per dimension: a location (unconstrained) and a log-scale in [-8, 3]."""

    kind = "logistic"
    params_per_dim = 2

    def _loc_scale(self, params):
        p = self.split(params)
        # bounded log-scale (as in the original VAE decoder): exp(8) stays a finite inverse scale in
        # the sigmoids, and a scale of e^3 already spreads a bin's mass over many unit intervals
        return p[:, 0], p[:, 1].clamp(-8.0, 3.0)

    def log_prob(self, params, x):
        loc, log_scale = self._loc_scale(params)
        return discretized_logistic_log_prob(loc, log_scale, x, self.info.levels)

    def sample(self, params, generator=None, n=None):
        loc, log_scale = self._loc_scale(params)
        loc, log_scale = self._expand(loc, n), self._expand(log_scale, n)
        return discretized_logistic_sample(loc, log_scale, self.info.levels, generator)

    def mean(self, params):
        return _logistic_lattice_mean(*self._loc_scale(params), self.info.levels)


def _logistic_lattice_mean(loc: torch.Tensor, log_scale: torch.Tensor, levels: int) -> torch.Tensor:
    """E[x] of the discretised logistic on the lattice k / (L - 1), elementwise."""
    # E[k] = sum_{j=1}^{L-1} P(k >= j) = sum_j (1 - F(lower edge of bin j)); a loop over levels
    # keeps memory at (B, D) instead of (B, L, D)
    inv_s = torch.exp(-log_scale)
    k = torch.zeros_like(loc)
    for j in range(1, levels):
        k = k + torch.sigmoid(inv_s * (loc - (j - 0.5) / (levels - 1)))
    return k / (levels - 1)


class LogisticMixtureHead(LikelihoodHead):
    """A mixture of K discretised logistics per dimension (PixelCNN++, Salimans et al., 2017).

    P = 3K parameters per dimension, parameter-major: ``split`` gives (B, 3K, *shape) holding K
    weight logits, then K locations (unconstrained), then K log-scales (clamped to [-8, 3] as in
    :class:`LogisticHead`). Each dimension has its own weights; PixelCNN++'s linear coupling of the
    R, G, B means is not included, so channels are independent given the parameters (the same
    model for one channel). With K = 1 it is :class:`LogisticHead` with one extra (ignored) logit.

    Args:
        components: K, the number of mixture components (at least 1).
    """

    kind = "logistic-mixture"

    def __init__(self, info, components: int = 5):
        super().__init__(info)
        if int(components) != components or components < 1:
            raise ConfigError(f"logistic-mixture needs components >= 1, got {components!r}")
        self.components = int(components)
        self.params_per_dim = 3 * self.components

    def _weights_loc_scale(self, params):
        p, k = self.split(params), self.components
        return p[:, :k], p[:, k : 2 * k], p[:, 2 * k :].clamp(-8.0, 3.0)

    def log_prob(self, params, x):
        return discretized_logistic_mixture_log_prob(*self._weights_loc_scale(params), x, self.info.levels)

    def sample(self, params, generator=None, n=None):
        w, loc, log_scale = (self._expand(t, n) for t in self._weights_loc_scale(params))
        return discretized_logistic_mixture_sample(w, loc, log_scale, self.info.levels, generator)

    def mean(self, params):
        w, loc, log_scale = self._weights_loc_scale(params)
        return (torch.softmax(w, 1) * _logistic_lattice_mean(loc, log_scale, self.info.levels)).sum(1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, components={self.components}"


class GaussianHead(LikelihoodHead):
    """Diagonal Gaussian per dimension, with a shared or a per-example standard deviation.

    Args:
        std: ``"shared"`` -- one learned log-std per data dimension, owned by the head (parameter
            ``log_std``, shape ``info.shape``; P = 1), hard-floored at ``min_log_std``;
            ``"per-example"`` -- output by the network with the mean (P = 2), softly floored as
            ``min_log_std + softplus(raw - min_log_std)``, or used as given when ``min_log_std`` is None.
        min_log_std: floor of the log-std (None: none).

    On discrete data ``log_prob`` dequantises x to ``y = (k + u) / L`` (from torch's global
    generator, as :func:`deepgen.data.transforms.dequantize`) and returns ``log N(y) - D log L``,
    a one-sample lower bound on log P(k); :meth:`log_density` is the density at a continuous point.
    """

    kind = "gaussian"
    is_mass = False

    def __init__(self, info, std: str = "shared", min_log_std: float | None = -6.0):
        super().__init__(info)
        if std not in ("shared", "per-example"):
            raise ConfigError(f"Gaussian std must be 'shared' or 'per-example', got {std!r}")
        self.std = std
        self.min_log_std = min_log_std
        self.params_per_dim = 1 if std == "shared" else 2
        if std == "shared":
            self.log_std = nn.Parameter(torch.zeros(info.shape))

    def mean_log_std(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-std, each (B, *shape) (the shared log-std broadcast over the batch)."""
        p = self.split(params)
        floor = self.min_log_std
        if self.std == "shared":
            log_std = self.log_std if floor is None else self.log_std.clamp_min(floor)
            return p[:, 0], log_std.expand_as(p[:, 0])
        raw = p[:, 1]
        return p[:, 0], raw if floor is None else floor + F.softplus(raw - floor)

    def log_density(self, params: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """log N(v | mean, std^2), (B,), for v in the continuous (dequantised) space."""
        mean, log_std = self.mean_log_std(params)
        return gaussian_log_prob(mean, log_std, v)

    def log_prob(self, params, x):
        if self.info.is_discrete:
            v, log_det = dequantize(x, self.info.levels)
            return self.log_density(params, v) + log_det
        return self.log_density(params, x)

    def sample(self, params, generator=None, n=None):
        mean, log_std = self.mean_log_std(params)
        mean, log_std = self._expand(mean, n), self._expand(log_std, n)
        v = mean + torch.exp(log_std) * torch.randn(mean.shape, generator=generator, device=mean.device)
        return quantize(v, self.info.levels) if self.info.is_discrete else v

    def mean(self, params):
        m = self.mean_log_std(params)[0]
        if not self.info.is_discrete:
            return m
        levels = self.info.levels  # bin k covers [k, k+1) / L, centre (k + 1/2) / L: map it to k / (L - 1)
        return ((m * levels - 0.5) / (levels - 1)).clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, std={self.std}"


def likelihood_head(
    info: DataInfo,
    choice: str = "auto",
    *,
    model: str = "model",
    std: str = "shared",
    min_log_std: float | None = -6.0,
    components: int = 5,
) -> LikelihoodHead:
    """The likelihood head for ``info``: ``auto`` picks bernoulli (binary data), logistic (other
    discrete data) or gaussian (continuous data).

    Args:
        info: the data.
        choice: auto, bernoulli, categorical, logistic, logistic-mixture or gaussian.
        model: the model's name, for error messages.
        std, min_log_std: options of :class:`GaussianHead`.
        components: K of :class:`LogisticMixtureHead`.

    Raises:
        DataError: the choice does not fit the data (bernoulli on non-binary data, categorical,
            logistic or logistic-mixture on continuous data), in one line.
    """
    if choice == "auto":
        choice = "gaussian" if not info.is_discrete else ("bernoulli" if info.is_binary else "logistic")
    have = "continuous values" if info.levels is None else f"{info.levels} levels"
    if choice == "bernoulli":
        if not info.is_binary:
            raise DataError(
                f"{model}: a bernoulli likelihood needs binary data (values 0/1) but {info.name} has {have}; "
                "use --binarize dynamic, or another likelihood"
            )
        return BernoulliHead(info)
    if choice in ("categorical", "logistic", "logistic-mixture"):
        if not info.is_discrete:
            raise DataError(
                f"{model}: a {choice} likelihood needs discrete data with a known number of levels but "
                f"{info.name} has {have}; pass --levels L for integers 0..L-1, or use gaussian"
            )
        if choice == "logistic-mixture":
            if int(components) != components or components < 1:
                raise ConfigError(f"{model}: logistic-mixture needs components >= 1, got {components!r}")
            return LogisticMixtureHead(info, components)
        return CategoricalHead(info) if choice == "categorical" else LogisticHead(info)
    if choice == "gaussian":
        return GaussianHead(info, std, min_log_std)
    raise ConfigError(f"{model}: unknown likelihood {choice!r}; valid: {', '.join(HEADS)}")
