"""Exact MCMC kernels: MALA, single-site flips for binary states, and block Gibbs for bipartite models.

Each sampler takes callables (``log_prob(x) -> (B,)`` or conditional samplers), runs B independent
chains in parallel on the device of the state, draws all randomness from ``generator`` and returns
detached tensors. The ``*_kernel`` forms follow the geometric path ``f_b = f0^(1-b) f1^b`` and are the
transitions that annealed importance sampling (:func:`deepgen.metrics.ais_log_partition`) needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from deepgen.samplers._checks import (
    as_grad_leaf,
    check_batch,
    check_positive,
    check_state,
    check_steps,
    local_grad,
    rand_batch,
    randn_like,
)

LogProb = Callable[[torch.Tensor], torch.Tensor]
Callback = Callable[[int, torch.Tensor], None]
#: An AIS transition ``kernel(x, beta, generator) -> x'`` that leaves ``f0^(1-beta) f1^beta`` invariant.
Kernel = Callable[[torch.Tensor, float, torch.Generator | None], torch.Tensor]


@dataclass
class MCMCResult:
    """Final state of a Metropolis-Hastings sampler.

    Attributes:
        x: final states, (B, ...), detached.
        accept_rate: fraction of accepted proposals over all chains and steps, in [0, 1].
    """

    x: torch.Tensor
    accept_rate: float


def _log_prob_and_grad(log_prob: LogProb, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with local_grad():
        xg = as_grad_leaf(x)
        lp = check_batch("log_prob", log_prob(xg), xg)
        (g,) = torch.autograd.grad(lp.sum(), xg)
    return lp.detach().double(), g.detach().to(x.dtype)


def _expand(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, *([1] * (x.dim() - 1)))


def mala(
    x0: torch.Tensor,
    log_prob: LogProb,
    step_size: float,
    n_steps: int,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> MCMCResult:
    """Metropolis-adjusted Langevin algorithm (Roberts & Tweedie, 1996, Bernoulli 2(4)).

    Proposes ``x' = x + eps * grad log p(x) + sqrt(2 eps) z`` and accepts with the Metropolis-Hastings
    probability ``min(1, p(x') q(x | x') / (p(x) q(x' | x)))``, so ``p`` is exactly invariant (no
    discretisation bias, unlike :func:`deepgen.samplers.langevin`). ``log_prob`` may be unnormalised
    (a negative energy); gradients are taken with autograd enabled locally, so it works under
    ``torch.no_grad()``. The acceptance test is computed in float64.

    Args:
        x0: initial states, (B, ...) floating, any device.
        log_prob: ``log_prob(x) -> (B,)``, log-density up to a constant; batch elements independent.
        step_size: eps > 0 (tune for an acceptance rate of roughly 0.5-0.8).
        n_steps: number of MH steps (>= 1).
        generator: source of all randomness.
        callback: ``callback(step, x)`` after each step.

    Returns:
        :class:`MCMCResult` with the final states and the overall acceptance rate.

    Example::

        mvn = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
        res = mala(torch.zeros(500, 2), mvn.log_prob, 0.3, 200, generator=torch.Generator().manual_seed(0))
        res.x.shape, res.accept_rate  # (500, 2), ~0.9
    """
    x = check_state("x0", x0).detach()
    eps = check_positive("step_size", step_size)
    check_steps("n_steps", n_steps)
    lp, g = _log_prob_and_grad(log_prob, x)
    accepted = torch.zeros((), dtype=torch.float64, device=x.device)
    for step in range(1, n_steps + 1):
        prop = x + eps * g + math.sqrt(2 * eps) * randn_like(x, generator)
        lp_p, g_p = _log_prob_and_grad(log_prob, prop)
        # log q(x' | x) and log q(x | x') up to the same constant: Gaussian with mean y + eps grad(y)
        fwd = ((prop - x - eps * g).double() ** 2).flatten(1).sum(1)
        bwd = ((x - prop - eps * g_p).double() ** 2).flatten(1).sum(1)
        log_accept = lp_p - lp + (fwd - bwd) / (4 * eps)
        # NaN (a proposal outside the support) compares False and is rejected
        acc = torch.log(rand_batch(x, generator)) < log_accept
        x = torch.where(_expand(acc, x), prop, x)
        g = torch.where(_expand(acc, g), g_p, g)
        lp = torch.where(acc, lp_p, lp)
        accepted = accepted + acc.double().sum()
        if callback is not None:
            callback(step, x)
    return MCMCResult(x, accepted.item() / (n_steps * x.shape[0]))


def _geometric(log_f0: LogProb, log_f1: LogProb, b: float) -> LogProb:
    def log_fb(x: torch.Tensor) -> torch.Tensor:
        return (1 - b) * log_f0(x) + b * log_f1(x)

    return log_fb


def mala_kernel(log_f0: LogProb, log_f1: LogProb, step_size: float = 0.05, n_sub: int = 1) -> Kernel:
    """MALA kernel for AIS: ``kernel(x, b, generator)`` makes ``n_sub`` :func:`mala` moves on ``f0^(1-b) f1^b``.

    The Metropolis-Hastings correction makes ``f_b`` exactly invariant, which AIS (Neal, 2001,
    arXiv:physics/9803008) needs for an unbiased estimate of the partition-function ratio.

    Example::

        kernel = mala_kernel(log_f0, log_f1, 0.05, n_sub=2)
        x = kernel(x, 0.5, generator)
    """
    check_positive("step_size", step_size)
    check_steps("n_sub", n_sub)

    def kernel(x: torch.Tensor, b: float, generator: torch.Generator | None) -> torch.Tensor:
        return mala(x, _geometric(log_f0, log_f1, b), step_size, n_sub, generator=generator).x

    return kernel


def metropolis_flip(
    x0: torch.Tensor,
    log_prob: LogProb,
    n_sweeps: int = 1,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> MCMCResult:
    """Single-site flip sampler for binary states x in {0, 1}^D (Metropolis-Hastings with Barker's rule).

    Each sweep proposes flipping every coordinate once, in a fixed order, and accepts with Barker's
    (1965) heat-bath probability ``p(x') / (p(x) + p(x'))``, which is exactly invariant for any
    (unnormalised) ``log_prob`` on binary vectors; for one flip it equals single-site Gibbs
    (Glauber dynamics). Barker's rule rather than Metropolis' ``min(1, p(x') / p(x))``: on a flat
    target Metropolis accepts every flip, so a systematic sweep flips every bit and the chain is
    periodic (an even number of sweeps returns to the start), e.g. AIS at beta = 0 with a uniform base.
    Costs D evaluations of ``log_prob`` per sweep, so it suits small binary models (RBMs, Ising).

    Args:
        x0: binary states (B, ...) with values 0/1 (any dtype; the chain keeps it).
        log_prob: ``log_prob(x) -> (B,)`` up to a constant.
        n_sweeps: number of sweeps (>= 1).
        generator: source of all randomness.
        callback: ``callback(sweep, x)`` after each sweep.

    Returns:
        :class:`MCMCResult` with the final states and the acceptance rate over all proposed flips.

    Example::

        res = metropolis_flip(torch.zeros(100, 6), rbm_neg_free_energy, 10, generator=g)
    """
    if not isinstance(x0, torch.Tensor) or x0.dim() < 1:
        raise ValueError("x0 must be a tensor of shape (B, ...)")
    check_steps("n_sweeps", n_sweeps)
    shape = x0.shape
    x = x0.detach().flatten(1).clone()
    with torch.no_grad():
        lp = check_batch("log_prob", log_prob(x.view(shape)), x).double()
        accepted = torch.zeros((), dtype=torch.float64, device=x.device)
        for sweep in range(1, n_sweeps + 1):
            for d in range(x.shape[1]):
                prop = x.clone()
                prop[:, d] = 1 - prop[:, d]
                lp_p = log_prob(prop.view(shape)).double()
                acc = torch.log(rand_batch(x, generator)) < torch.nn.functional.logsigmoid(lp_p - lp)
                x = torch.where(acc.unsqueeze(1), prop, x)
                lp = torch.where(acc, lp_p, lp)
                accepted = accepted + acc.double().sum()
            if callback is not None:
                callback(sweep, x.view(shape))
    return MCMCResult(x.view(shape), accepted.item() / (n_sweeps * x.shape[0] * max(x.shape[1], 1)))


def metropolis_flip_kernel(log_f0: LogProb, log_f1: LogProb, n_sweeps: int = 1) -> Kernel:
    """AIS kernel: ``n_sweeps`` of :func:`metropolis_flip` on ``f0^(1-b) f1^b`` for binary x.

    Suited to AIS on small binary energy models (RBMs) whose own Gibbs kernels do not follow the
    geometric path between the base and the model.
    """
    check_steps("n_sweeps", n_sweeps)

    def kernel(x: torch.Tensor, b: float, generator: torch.Generator | None) -> torch.Tensor:
        return metropolis_flip(x, _geometric(log_f0, log_f1, b), n_sweeps, generator=generator).x

    return kernel


def gibbs(
    v0: torch.Tensor,
    sample_h_given_v: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor],
    sample_v_given_h: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor],
    k: int,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Block Gibbs sampling for bipartite models such as RBMs (Geman & Geman, 1984; Hinton, 2002).

    Alternates ``h ~ p(h | v)`` and ``v ~ p(v | h)`` ``k`` times: v0 -> h0 -> v1 -> ... -> h_{k-1} -> v_k.
    This is the negative phase of CD-k (Hinton, 2002) and, started from persistent chains, of PCD
    (Tieleman, 2008). The joint ``p(v, h)`` is invariant, so the returned pair is a joint sample once
    the chain has mixed.

    Args:
        v0: initial visible states, (B, ...).
        sample_h_given_v: ``(v, generator) -> h``, a sample of the hidden units given v, (B, ...).
        sample_v_given_h: ``(h, generator) -> v``, a sample of the visible units given h.
        k: number of full Gibbs steps (>= 1).
        generator: passed to both conditional samplers; the only source of randomness.
        callback: ``callback(step, v)`` after each full step.

    Returns:
        ``(v_k, h_{k-1})``: the final visible state and the hidden state it was drawn from, detached.

    Example::

        h_given_v = lambda v, g: torch.bernoulli(torch.sigmoid(v @ W + c), generator=g)
        v_given_h = lambda h, g: torch.bernoulli(torch.sigmoid(h @ W.T + b), generator=g)
        v, h = gibbs(torch.zeros(100, 4), h_given_v, v_given_h, k=10, generator=torch.Generator().manual_seed(0))
    """
    if not isinstance(v0, torch.Tensor) or v0.dim() < 1:
        raise ValueError("v0 must be a tensor of shape (B, ...)")
    check_steps("k", k)
    v, h = v0.detach(), None
    with torch.no_grad():
        for step in range(1, k + 1):
            h = sample_h_given_v(v, generator).detach()
            v = sample_v_given_h(h, generator).detach()
            if callback is not None:
                callback(step, v)
    return v, h
