"""Langevin samplers driven by a score callable: unadjusted Langevin / SGLD and annealed Langevin.

Samplers take callables, not models: ``score(x) -> grad_x log p(x)`` with the shape of ``x``, or
``score(x, sigma)`` for noise-conditional score networks. :func:`score_from_log_prob` turns a
log-density or negative energy ``log_prob(x) -> (B,)`` into a score, so deep EBMs and flows use the
same samplers as score models and diffusion models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from deepgen.samplers._checks import (
    as_grad_leaf,
    check_batch,
    check_like,
    check_positive,
    check_state,
    check_steps,
    local_grad,
    randn_like,
)

Score = Callable[[torch.Tensor], torch.Tensor]
NoiseScore = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, torch.Tensor], None]


def score_from_log_prob(log_prob: Callable[[torch.Tensor], torch.Tensor]) -> Score:
    """Score ``x -> grad_x log_prob(x)`` of a log-density or negative energy ``log_prob(x) -> (B,)``.

    The gradient is taken with autograd enabled locally, so the score works under an outer
    ``torch.no_grad()`` or ``torch.inference_mode()`` (sampling code runs there); it is returned
    detached and no gradient accumulates in the model's parameters. Batch elements must be
    independent (the gradient of the summed log-density is each element's own gradient).

    Example::

        mvn = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
        score = score_from_log_prob(mvn.log_prob)
        with torch.no_grad():
            g = score(torch.ones(5, 2))  # (5, 2), equals -x
    """

    def score(x: torch.Tensor) -> torch.Tensor:
        with local_grad():
            xg = as_grad_leaf(x)
            lp = check_batch("log_prob", log_prob(xg), xg)
            (g,) = torch.autograd.grad(lp.sum(), xg)
        return g.detach()

    return score


def langevin(
    x0: torch.Tensor,
    score: Score,
    step_size: float,
    n_steps: int,
    *,
    noise_scale: float = 1.0,
    clip_grad: float | None = None,
    clamp: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Unadjusted Langevin dynamics: ``x <- x + eps * score(x) + sqrt(2 eps) * noise_scale * z``.

    With ``noise_scale=1`` this is the unadjusted Langevin algorithm (ULA), whose stationary law is
    ``p`` up to an O(eps) discretisation bias (use :func:`deepgen.samplers.mala` for exactness);
    with a minibatch estimate of the score it is SGLD (Welling & Teh, 2011, ICML). Deep EBMs commonly
    use ``noise_scale < 1`` (and a larger step) as in Du & Mordatch, 2019, arXiv:1903.08689: the
    chain then samples a sharpened ``p^(1/noise_scale^2)``, a short-run heuristic rather than
    an exact sampler.

    Args:
        x0: initial state, (B, ...), any floating dtype and device; the chain keeps both.
        score: ``score(x) -> grad_x log p(x)`` with the shape of ``x`` (see :func:`score_from_log_prob`).
        step_size: eps > 0.
        n_steps: number of updates (>= 1).
        noise_scale: multiplies the injected noise (1 = true Langevin).
        clip_grad: if given, the score is clamped elementwise to ``[-clip_grad, clip_grad]``.
        clamp: if given, ``(lo, hi)`` bounds applied to x after every step (e.g. the image range).
        generator: source of all randomness (same seed, same chain).
        callback: called as ``callback(step, x)`` after each step (step = 1..n_steps).

    Returns:
        The final state, detached, with the shape, dtype and device of ``x0``.

    Example::

        score = lambda x: -x  # standard normal
        x = langevin(torch.zeros(1000, 2), score, 0.01, 500, generator=torch.Generator().manual_seed(0))
    """
    x = check_state("x0", x0).detach()
    eps = check_positive("step_size", step_size)
    check_steps("n_steps", n_steps)
    if noise_scale < 0:
        raise ValueError(f"noise_scale must be >= 0, got {noise_scale!r}")
    if clip_grad is not None:
        clip_grad = check_positive("clip_grad", clip_grad)
    noise_std = math.sqrt(2 * eps) * noise_scale
    for step in range(1, n_steps + 1):
        g = check_like("score", score(x), x).detach()
        if clip_grad is not None:
            g = g.clamp(-clip_grad, clip_grad)
        x = x + eps * g.to(x.dtype) + noise_std * randn_like(x, generator)
        if clamp is not None:
            x = x.clamp(*clamp)
        if callback is not None:
            callback(step, x)
    return x


def annealed_langevin(
    x0: torch.Tensor,
    score: NoiseScore,
    sigmas: Sequence[float] | torch.Tensor,
    steps_per_level: int,
    eps: float,
    *,
    denoise_last: bool = True,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Annealed Langevin dynamics with a noise-conditional score (Song & Ermon, 2019, arXiv:1907.05600).

    Algorithm 1 of the paper, in its own parametrisation: for each noise level sigma_i (decreasing),
    ``steps_per_level`` steps ``x <- x + (alpha_i / 2) score(x, sigma_i) + sqrt(alpha_i) z`` with
    ``alpha_i = eps * sigma_i^2 / sigma_L^2``, where sigma_L is the smallest level, so the paper's
    ``eps`` (2e-5 for CIFAR-10 with sigma_L = 0.01) means the same here. (:func:`langevin` uses the
    ``x + eps * score + sqrt(2 eps) z`` form: its ``eps`` is half of this one.)
    Large noise levels let chains cross between modes, so the mode weights come out right, which
    plain Langevin on a multimodal density does not achieve. With ``denoise_last`` a final Tweedie
    step ``x + sigma_L^2 * score(x, sigma_L)`` removes the remaining noise of level sigma_L
    (Song & Ermon, 2020, "Improved techniques", arXiv:2006.09011; Jolicoeur-Martineau et al. 2020).

    Args:
        x0: initial state, (B, ...) (the paper uses uniform noise for images).
        score: ``score(x, sigma) -> grad_x log p_sigma(x)`` where ``p_sigma = p * N(0, sigma^2 I)``,
            and ``sigma`` is passed as a tensor of shape (B,) with the dtype and device of ``x``.
        sigmas: noise levels, strictly decreasing and positive, e.g. geometric from sigma_1 to sigma_L.
        steps_per_level: T, Langevin steps at each level (>= 1).
        eps: the step size at the smallest level (the paper uses 2e-5 with sigma_L = 0.01).
        denoise_last: apply the final Tweedie denoising step.
        generator: source of all randomness.
        callback: called as ``callback(step, x)`` after every Langevin step (step counts across levels).

    Returns:
        The final samples, detached, (B, ...).

    Example::

        sigmas = torch.logspace(1, -2, 10)  # 10 -> 0.01
        x = annealed_langevin(torch.rand(64, 2) * 8 - 4, net_score, sigmas, 100, 2e-5)
    """
    x = check_state("x0", x0).detach()
    eps = check_positive("eps", eps)
    check_steps("steps_per_level", steps_per_level)
    levels = [float(s) for s in (sigmas.tolist() if isinstance(sigmas, torch.Tensor) else sigmas)]
    if not levels or any(not (math.isfinite(s) and s > 0) for s in levels):
        raise ValueError(f"sigmas must be a non-empty sequence of finite positive numbers, got {levels}")
    if any(b >= a for a, b in zip(levels, levels[1:])):
        raise ValueError("sigmas must be strictly decreasing (largest noise level first)")
    sigma_last = levels[-1]
    step = 0
    for sigma in levels:
        alpha = eps * sigma**2 / sigma_last**2
        sig = torch.full(x.shape[:1], sigma, dtype=x.dtype, device=x.device)
        for _ in range(steps_per_level):
            g = check_like("score", score(x, sig), x).detach()
            x = x + 0.5 * alpha * g.to(x.dtype) + math.sqrt(alpha) * randn_like(x, generator)
            step += 1
            if callback is not None:
                callback(step, x)
    if denoise_last:
        sig = torch.full(x.shape[:1], sigma_last, dtype=x.dtype, device=x.device)
        x = x + sigma_last**2 * score(x, sig).detach().to(x.dtype)
    return x
