"""Per-dimension likelihood formulas, pure functions of tensors.

Models do not call these directly to choose a likelihood: :func:`deepgen.nn.likelihood_head` picks a
head from the data (Bernoulli, categorical, discretised logistic, Gaussian) and the heads build on
these formulas. Each ``*_log_prob`` returns log-probabilities summed over all non-batch dimensions, shape (B,), in
nats. Discrete data ``x`` use deepgen's convention ``x = k / (L - 1)`` (see :mod:`deepgen.data.base`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


def _sum(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).sum(1)


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log Bernoulli(x | sigmoid(logits)) for x in {0, 1}."""
    return -_sum(F.binary_cross_entropy_with_logits(logits, x, reduction="none"))


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log N(x | mean, exp(log_std)^2), diagonal."""
    z = (x - mean) * torch.exp(-log_std)
    return _sum(-0.5 * z * z - log_std - 0.5 * LOG_2PI)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z | 0, I)."""
    return _sum(-0.5 * z * z - 0.5 * LOG_2PI)


def categorical_log_prob(logits: torch.Tensor, x: torch.Tensor, levels: int) -> torch.Tensor:
    """Per-dimension categorical over ``levels`` values; ``logits`` (B, L, *shape), x (B, *shape)."""
    k = torch.round(x * (levels - 1)).long()
    logp = torch.log_softmax(logits, dim=1)
    return _sum(torch.gather(logp, 1, k.unsqueeze(1)).squeeze(1))


def discretized_logistic_log_prob(
    mean: torch.Tensor, log_scale: torch.Tensor, x: torch.Tensor, levels: int
) -> torch.Tensor:
    """Discretised logistic (Salimans et al., 2017, PixelCNN++, arXiv:1701.05517) on L levels.

    Lattice points ``x = k/(L-1)`` in [0, 1]; bin ``k`` covers ``x +- 1/(2(L-1))``, with the first and
    last bins extended to -inf/+inf so that the masses sum to exactly 1.
    """
    half = 0.5 / (levels - 1)
    inv_s = torch.exp(-log_scale)
    c = x - mean
    cdf_plus = torch.sigmoid(inv_s * (c + half))
    cdf_min = torch.sigmoid(inv_s * (c - half))
    log_cdf_plus = F.logsigmoid(inv_s * (c + half))  # log CDF at upper edge (first bin)
    log_one_minus_cdf_min = -F.softplus(inv_s * (c - half))  # log (1 - CDF) at lower edge (last bin)
    mid = torch.clamp(cdf_plus - cdf_min, min=1e-12)
    # In the far tails the difference underflows: use the density times the bin width there.
    log_pdf_mid = inv_s * c - log_scale - 2 * F.softplus(inv_s * c) + math.log(2 * half)
    log_mid = torch.where(mid > 1e-5, torch.log(mid), log_pdf_mid)
    k = torch.round(x * (levels - 1))
    logp = torch.where(k <= 0, log_cdf_plus, torch.where(k >= levels - 1, log_one_minus_cdf_min, log_mid))
    return _sum(logp)


def discretized_logistic_sample(
    mean: torch.Tensor, log_scale: torch.Tensor, levels: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Sample the discretised logistic: a logistic draw rounded to the nearest lattice point."""
    u = torch.rand(mean.shape, generator=generator, device=mean.device).clamp(1e-5, 1 - 1e-5)
    x = mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
    return torch.round(torch.clamp(x, 0, 1) * (levels - 1)) / (levels - 1)


def kl_normal_standard(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over dimensions, (B,)."""
    return 0.5 * _sum(mu * mu + torch.exp(logvar) - 1 - logvar)
