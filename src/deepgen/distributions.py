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


def _discretized_logistic_log_mass(
    mean: torch.Tensor, log_scale: torch.Tensor, x: torch.Tensor, levels: int
) -> torch.Tensor:
    """Per-element log mass of the discretised logistic, not summed: the broadcast shape of the inputs."""
    half = 0.5 / (levels - 1)
    inv_s = torch.exp(-log_scale)
    c = x - mean
    a, b = inv_s * (c + half), inv_s * (c - half)  # the bin's upper and lower edges, standardised
    log_cdf_plus = F.logsigmoid(a)  # log CDF at the upper edge (first bin)
    log_one_minus_cdf_min = F.logsigmoid(-b)  # log (1 - CDF) at the lower edge (last bin)
    # sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - e^(b - a)): exact in logs everywhere, so
    # the masses sum to 1 even where the difference of two CDFs would underflow (no density fallback)
    log_mid = log_cdf_plus + log_one_minus_cdf_min + torch.log(-torch.expm1(b - a))
    k = torch.round(x * (levels - 1))
    return torch.where(k <= 0, log_cdf_plus, torch.where(k >= levels - 1, log_one_minus_cdf_min, log_mid))


def discretized_logistic_log_prob(
    mean: torch.Tensor, log_scale: torch.Tensor, x: torch.Tensor, levels: int
) -> torch.Tensor:
    """Discretised logistic (Salimans et al., 2017, PixelCNN++, arXiv:1701.05517) on L levels.

    Lattice points ``x = k/(L-1)`` in [0, 1]; bin ``k`` covers ``x +- 1/(2(L-1))``, with the first and
    last bins extended to -inf/+inf so that the masses sum to exactly 1.
    """
    return _sum(_discretized_logistic_log_mass(mean, log_scale, x, levels))


def discretized_logistic_mixture_log_prob(
    logit_weights: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor, x: torch.Tensor, levels: int
) -> torch.Tensor:
    """Mixture of K discretised logistics per dimension (PixelCNN++, arXiv:1701.05517) on L levels.

    ``logit_weights``, ``means``, ``log_scales``: (B, K, *shape), the component axis at dim 1 (a batch
    of 1 broadcasts over x); ``x``: (B, *shape) on the lattice ``k/(L-1)``. Every data dimension has
    its own K weights, and dimensions are independent given the parameters: PixelCNN++'s linear
    coupling of the R, G, B means is not included (for one channel it makes no difference).
    Computed as ``logsumexp_k(log_softmax(weights)_k + log P_k(x))`` per dimension, summed to (B,).

    >>> w, m, s = torch.zeros(1, 3, 2), torch.tensor([[[0.2, 0.8]] * 3]), torch.zeros(1, 3, 2)
    >>> lp = discretized_logistic_mixture_log_prob(w, m, s, torch.tensor([[0.5, 1.0]]), 5)
    >>> torch.allclose(lp, discretized_logistic_log_prob(m[:, 0], s[:, 0], torch.tensor([[0.5, 1.0]]), 5))
    True
    """
    log_w = torch.log_softmax(logit_weights, 1)
    log_mass = _discretized_logistic_log_mass(means, log_scales, x.unsqueeze(1), levels)  # (B, K, *shape)
    return _sum(torch.logsumexp(log_w + log_mass, 1))


def discretized_logistic_sample(
    mean: torch.Tensor, log_scale: torch.Tensor, levels: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Sample the discretised logistic: a logistic draw rounded to the nearest lattice point."""
    u = torch.rand(mean.shape, generator=generator, device=mean.device).clamp(1e-5, 1 - 1e-5)
    x = mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
    return torch.round(torch.clamp(x, 0, 1) * (levels - 1)) / (levels - 1)


def discretized_logistic_mixture_sample(
    logit_weights: torch.Tensor,
    means: torch.Tensor,
    log_scales: torch.Tensor,
    levels: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample the per-dimension mixture of :func:`discretized_logistic_mixture_log_prob`, (B, *shape).

    Per dimension: a component from softmax(weights) (Gumbel-max), then that component's logistic draw
    rounded to the lattice (:func:`discretized_logistic_sample`); all randomness from ``generator``.
    """
    logit_weights, means, log_scales = torch.broadcast_tensors(logit_weights, means, log_scales)
    u = torch.rand(logit_weights.shape, generator=generator, device=logit_weights.device, dtype=logit_weights.dtype)
    gumbel = -torch.log(-torch.log(u.clamp_min(torch.finfo(u.dtype).tiny)))
    idx = torch.argmax(logit_weights + gumbel, 1, keepdim=True)  # (B, 1, *shape)
    mean = torch.gather(means, 1, idx).squeeze(1)
    log_scale = torch.gather(log_scales, 1, idx).squeeze(1)
    return discretized_logistic_sample(mean, log_scale, levels, generator)


def kl_normal_standard(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over dimensions, (B,)."""
    return 0.5 * _sum(mu * mu + torch.exp(logvar) - 1 - logvar)
