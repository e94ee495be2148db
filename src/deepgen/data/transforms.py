"""Data transforms that are not bijections: dequantisation, quantisation, snapping, binarisation.

Densities move between spaces by the change-of-variables rule; a function here that changes space
returns ``log|det dy/dx|`` per example (shape (B,)) so that likelihoods can be reported in the
data's own units. For discrete data with ``L`` levels held as ``x = k / (L - 1)``:

    log P(k) >= E_u[ log p_model((k + u) / L) ] - D log L,     u ~ U[0, 1)^D

(Theis et al., 2016, arXiv:1511.01844), which is why a continuous-density model on discrete data
reports a *bound*.

Invertible maps with log-determinants (RealNVP's logit, rescaling, sigmoid, ...) are bijectors and
live in :mod:`deepgen.bijectors` (``Logit``, ``Rescale``), with one direction convention.
"""

from __future__ import annotations

import math

import torch


def dequantize(
    x: torch.Tensor, levels: int, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
):
    """Uniform dequantisation of ``x = k / (L-1)``: ``y = (k + u) / L`` in (0, 1).

    Returns ``(y, log_det)`` with ``log_det = -D log L`` (the Jacobian of ``k -> y``), so that
    ``log_prob_y(y) + log_det`` lower-bounds ``log P(k)`` in expectation over ``u``.
    Pass ``noise`` (same shape, in [0, 1)) to use fixed ``u``.
    """
    k = torch.round(x * (levels - 1))
    if noise is None:
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    y = (k + noise) / levels
    d = x[0].numel()
    log_det = torch.full((x.shape[0],), -d * math.log(levels), dtype=x.dtype, device=x.device)
    return y, log_det


def quantize(y: torch.Tensor, levels: int) -> torch.Tensor:
    """Inverse of :func:`dequantize`: ``y`` in [0, 1) -> ``floor(y L) / (L - 1)`` on the lattice."""
    k = torch.clamp(torch.floor(y * levels), 0, levels - 1)
    return k / (levels - 1)


def snap(x: torch.Tensor, levels: int | None) -> torch.Tensor:
    """Round values in [0, 1] to the nearest of ``levels`` lattice points (no-op for continuous)."""
    if levels is None:
        return x
    return torch.round(torch.clamp(x, 0, 1) * (levels - 1)) / (levels - 1)


def binarize_dynamic(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarisation: each value ``x`` in [0, 1] becomes 1 with probability ``x``."""
    return torch.bernoulli(x, generator=generator)


def binarize_threshold(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Deterministic binarisation ``x > threshold``."""
    return (x > threshold).to(x.dtype)
