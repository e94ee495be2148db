"""MADE: Masked Autoencoder for Distribution Estimation (Germain, Gregor, Murray, Larochelle, 2015,
arXiv:1502.03509).

An MLP whose weight matrices are multiplied by 0/1 masks so that the outputs for dimension
``o(i)`` depend only on the inputs ``o(1), ..., o(i-1)`` of an ordering ``o``. One forward pass then
gives every factor of the chain rule, an exact likelihood::

    log p(x) = sum_{i=1}^{D} log p(x_{o(i)} | x_{o(1)}, ..., x_{o(i-1)})

Masks come from degrees: input ``o(i)`` has degree ``m0 = i``; hidden unit k of layer l a degree
``m_l(k)`` in ``[min m_{l-1}, D - 1]``; the masks are ``M_l[k, j] = 1{m_l(k) >= m_{l-1}(j)}`` for
hidden layers and ``M_out[d, k] = 1{m0(d) > m_L(k)}`` (strict) for the output
(:func:`deepgen.nn.made_degrees`, :func:`deepgen.nn.made_masks`). Masks are buffers multiplied into
the weights inside ``forward`` (:class:`deepgen.nn.MaskedLinear`), never written into them.

Connectivity-agnostic training (paper, sec. 4): a seeded set of K masks (different hidden degrees;
with ``resample_order`` different orderings too) is drawn once; each training step uses one of them
at random, so one set of weights learns K autoregressive models. At test time the ensemble averages
the *probabilities* of the first E masks::

    p_ens(x) = (1/E) sum_{k=1}^{E} p_k(x),   log p_ens(x) = logsumexp_k log p_k(x) - log E

Each ``p_k`` is an exact normalised density (or mass), so their mixture is one too: the ensemble's
``log_prob`` is still labelled ``exact``.

Outputs per dimension through :func:`deepgen.nn.likelihood_head`: Bernoulli logits (binary data),
L categorical logits (discrete data with L levels, e.g. 17 for sklearn digits), or a Gaussian mean
and log-std (continuous data). Sampling is sequential: D network passes, one per position.

>>> from deepgen.data import DataInfo
>>> m = MADE(DataInfo("toy", (6,), 2), MADEConfig(hidden=(16,)))
>>> m.log_prob(torch.zeros(3, 6)).shape, m.sample(2).shape
(torch.Size([3]), torch.Size([2, 6]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from deepgen.distributions import LOG_2PI
from deepgen.errors import ConfigError, DataError
from deepgen.models.base import DensityKind, GenerativeModel
from deepgen.nn import MADENetwork, likelihood_head
from deepgen.registry import register


@dataclass(frozen=True)
class MADEConfig:
    """Options of :class:`MADE`.

    hidden: hidden layer sizes; (500,) is the paper's 1-layer model, (500, 500) its 2-layer one.
    order: natural (0..D-1, row-major for images) or random (a seeded permutation).
    num_masks: masks for connectivity-agnostic training; each training step uses one at random.
    ensemble: masks whose probabilities log_prob averages at test time (the first E of the set).
    resample_order: with order=random, give each mask its own ordering (order-agnostic training).
    direct: a masked connection from the inputs straight to the outputs, beside the hidden layers
        (the paper's experiments use it).
    likelihood: auto picks bernoulli (binary), categorical (other discrete) or gaussian (continuous).
    seed: seed of the orderings and hidden degrees.
    """

    hidden: tuple[int, ...] = (500,)
    order: Literal["natural", "random"] = "natural"
    num_masks: int = 1
    ensemble: int = 1
    resample_order: bool = False
    direct: bool = True
    likelihood: Literal["auto", "bernoulli", "categorical", "gaussian"] = "auto"
    seed: int = 0

    def __post_init__(self):
        if any(h < 1 for h in self.hidden):
            raise ConfigError(f"MADE hidden sizes must be positive, got {self.hidden}")
        if self.num_masks < 1 or not 1 <= self.ensemble <= self.num_masks:
            raise ConfigError(
                f"MADE needs num_masks >= 1 and 1 <= ensemble <= num_masks, got {self.num_masks} and {self.ensemble}"
            )


@dataclass(frozen=True)
class MADESampling:
    """Sampling options of :class:`MADE`.

    temperature: sharpness of each conditional. Bernoulli and categorical: logits divided by it
        (below 1 favours likely values; 0 takes the most likely value, greedy decoding). Gaussian:
        scale of the standard deviation (0 takes the mean). 1 samples the model.
    mask_index: sample (or complete) with this one mask of the set; none samples the ensemble
        mixture (a mask drawn per example, uniformly among the first `ensemble`).
    """

    temperature: float = 1.0
    mask_index: int | None = None

    def __post_init__(self):
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")


@register("made")
class MADE(GenerativeModel):
    """MADE (Germain et al. 2015, arXiv:1502.03509): a masked MLP giving exact autoregressive likelihoods.

    Shapes: ``x`` (B, *info.shape), flattened to (B, D) row-major; ``log_prob`` (B,) nats, a log
    probability mass on discrete data, a log density on continuous data; ``sample(n)`` (n, *shape).
    ``conditioner(x)`` (B, D, P) exposes the per-dimension parameters (P = 1 Bernoulli, L categorical,
    2 Gaussian mean and log-std before the head's soft floor).
    ``complete(x, mask)`` fills the entries where ``mask`` is False in the ordering.

    >>> from deepgen.data import DataInfo
    >>> m = MADE(DataInfo("digits", (1, 8, 8), 17), MADEConfig(hidden=(32,), num_masks=4, ensemble=2))
    >>> m.conditioner(torch.zeros(5, 1, 8, 8)).shape
    torch.Size([5, 64, 17])
    """

    family = "autoregressive"
    Config = MADEConfig
    SampleConfig = MADESampling
    density_summary = "exact (chain rule; a mask ensemble is an exact mixture)"
    has_exact_density = True
    test_options = {"hidden": (16,), "num_masks": 2, "ensemble": 2}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        lik = cfg.likelihood
        if lik == "auto":
            lik = "gaussian" if not info.is_discrete else ("bernoulli" if info.is_binary else "categorical")
        if lik == "gaussian" and info.is_discrete:
            raise DataError(f"made: a gaussian output models continuous data; {info.name} is discrete (use auto)")
        self.likelihood = likelihood_head(info, lik, model=self.name, std="per-example")
        self.net = MADENetwork(
            info.dim,
            self.likelihood.params_per_dim,
            cfg.hidden,
            order=cfg.order,
            num_masks=cfg.num_masks,
            resample_order=cfg.resample_order,
            direct=cfg.direct,
            seed=cfg.seed,
        )

    @property
    def density_kind(self) -> DensityKind:
        return DensityKind.EXACT

    def conditioner(self, x: torch.Tensor, mask_index: int = 0) -> torch.Tensor:
        """(B, *shape) or (B, D) -> (B, D, P) parameters of p(x_d | x_<d) under mask ``mask_index``."""
        self.net.use_mask(mask_index)
        return self.net(x.flatten(1))

    # -- densities ------------------------------------------------------------------------------------
    def log_prob_dims(self, u: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """(B, D) log p(u_d | u_<d) from flat data ``u`` (B, D) and parameters ``raw`` (B, P * D)."""
        kind = self.likelihood.kind
        if kind == "bernoulli":
            return -F.binary_cross_entropy_with_logits(raw, u, reduction="none")
        if kind == "categorical":
            levels = self.info.levels
            k = torch.round(u * (levels - 1)).long()
            logp = torch.log_softmax(raw.view(len(u), levels, -1), 1)
            return logp.gather(1, k.unsqueeze(1)).squeeze(1)
        mean, log_std = (t.flatten(1) for t in self.likelihood.mean_log_std(raw))
        z = (u - mean) * torch.exp(-log_std)
        return -0.5 * z * z - log_std - 0.5 * LOG_2PI

    def log_prob_mask(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log p_k(x) (B,) of the single MADE with mask ``k``."""
        self.net.use_mask(k)
        u = x.flatten(1)
        return self.log_prob_dims(u, self.net.flat_params(u)).sum(1)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Exact log p(x) (B,): log of the mean probability over the first ``ensemble`` masks."""
        self.check_input(x)
        e = self.config.ensemble
        if e == 1:
            return self.log_prob_mask(x, 0)
        lp = torch.stack([self.log_prob_mask(x, k) for k in range(e)], 1)
        return torch.logsumexp(lp, 1) - math.log(e)

    def loss(self, x, y=None):
        """NLL per dimension; in training mode under one mask drawn from the set (torch's global RNG)."""
        if self.training:
            k = int(torch.randint(self.config.num_masks, ())) if self.config.num_masks > 1 else 0
            lp = self.log_prob_mask(x, k)
        else:
            lp = self.log_prob(x)
        nll = -lp.mean()
        return {"loss": nll / self.info.dim, "nll": nll.detach()}

    # -- sampling and completion -------------------------------------------------------------------------
    def _sample_dim(self, raw, d: int, temperature: float, generator) -> torch.Tensor:
        """(B,) draws of dimension ``d`` from parameters ``raw`` (B, P * D), in data space."""
        p = raw.view(len(raw), self.likelihood.params_per_dim, -1)[:, :, d]  # (B, P)
        kind, t = self.likelihood.kind, temperature
        if kind == "bernoulli":
            if t == 0:
                return (p[:, 0] > 0).to(raw.dtype)
            return torch.bernoulli(torch.sigmoid(p[:, 0] / t), generator=generator)
        if kind == "categorical":
            if t == 0:
                k = p.argmax(1)
            else:
                k = torch.multinomial(torch.softmax(p / t, 1), 1, generator=generator)[:, 0]
            return k.to(raw.dtype) / (self.info.levels - 1)
        mean, log_std = (v.flatten(1)[:, d] for v in self.likelihood.mean_log_std(raw))
        eps = torch.randn(mean.shape, generator=generator, device=raw.device, dtype=raw.dtype)
        return mean + t * torch.exp(log_std) * eps

    def _fill(self, u, observed, masks, temperature, generator) -> torch.Tensor:
        """Fill ``u`` (B, D) where ``observed`` is False, in the ordering of each example's mask."""
        u = u.clone()
        for k in torch.unique(masks).tolist():
            rows = masks == k
            v, free = u[rows], ~observed[rows]
            self.net.use_mask(k)
            for d in self.net.order(k).tolist():
                if free[:, d].any():
                    value = self._sample_dim(self.net.flat_params(v), d, temperature, generator)
                    v[:, d] = torch.where(free[:, d], value, v[:, d])
            u[rows] = v
        return u

    def _mask_choice(self, n, options, generator) -> torch.Tensor:
        if options.mask_index is not None:
            self.net.use_mask(options.mask_index)  # validates it
            return torch.full((n,), options.mask_index, device=self.device)
        if self.config.ensemble == 1:
            return torch.zeros(n, dtype=torch.long, device=self.device)
        return torch.randint(self.config.ensemble, (n,), generator=generator, device=self.device)

    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        u = torch.zeros(n, self.info.dim, device=self.device, dtype=self.net.output.weight.dtype)
        observed = torch.zeros_like(u, dtype=torch.bool)
        masks = self._mask_choice(n, options, generator)
        return self._fill(u, observed, masks, options.temperature, generator).view(n, *self.info.shape)

    @torch.no_grad()
    def complete(self, x, mask, *, generator=None, y=None, **options):
        """Fill ``x`` (B, *shape) where ``mask`` (bool, broadcast to x; True = observed) is False.

        Each unobserved dimension is drawn from p(x_d | x_<d) in the ordering, given everything
        before it: observed values and those already filled. This is the exact conditional
        p(x_unobserved | x_observed) when every observed dimension precedes every unobserved one in
        the ordering (e.g. the bottom half of an image given the top half in natural order);
        otherwise observed dimensions later in the ordering are ignored when filling earlier ones
        (an approximation). Observed entries are returned unchanged in every case.

        With ``ensemble`` E > 1 and no ``mask_index`` option, each example draws its mask from the
        posterior p(k | observed prefix) proportional to p_k(observed dimensions before the first
        unobserved one), so a prefix completion samples the exact conditional of the mixture.
        """
        opts = self.sample_options(**options)
        self.check_labels(y, len(x), draw=False)
        self.check_input(x)
        observed = torch.as_tensor(mask, device=x.device).bool().expand_as(x).flatten(1)
        u = torch.where(observed, x.flatten(1), torch.zeros((), dtype=x.dtype, device=x.device))
        if opts.mask_index is None and self.config.ensemble > 1:
            masks = self._posterior_masks(u, observed, generator)
        else:
            masks = self._mask_choice(len(x), opts, generator)
        filled = self._fill(u, observed, masks, opts.temperature, generator)
        return torch.where(observed, x.flatten(1), filled).view_as(x)

    def _posterior_masks(self, u, observed, generator) -> torch.Tensor:
        """(B,) masks drawn from p(k | x_prefix), the observed dimensions before the first free one."""
        logw = []
        d = self.info.dim
        for k in range(self.config.ensemble):
            self.net.use_mask(k)
            pos = self.degrees_of(k) - 1  # (D,) position of each dimension in mask k's ordering
            first_free = torch.where(observed, torch.full_like(pos, d)[None], pos[None]).min(1).values
            prefix = pos[None, :] < first_free[:, None]
            lp = self.log_prob_dims(u, self.net.flat_params(u))
            logw.append(torch.where(prefix, lp, torch.zeros_like(lp)).sum(1))
        w = torch.softmax(torch.stack(logw, 1), 1)
        return torch.multinomial(w, 1, generator=generator)[:, 0]

    def degrees_of(self, k: int) -> torch.Tensor:
        """(D,) input degrees of mask ``k``: position in the ordering plus one."""
        return self.net.degrees0[k]

    def extra_repr(self) -> str:
        c = self.config
        return f"{super().extra_repr()}, hidden={c.hidden}, masks={c.num_masks}, ensemble={c.ensemble}"
