"""Likelihood metrics with stated units: NLL in nats, bits/dim, importance sampling and AIS.

Units: every ``log_prob``/``nll`` here is in **nats**. Bits per dimension is

    bpd = NLL_nats / (D ln 2)

where the NLL is that of the *discrete* data (a log probability mass over L^D values), so the
dequantisation ``- D log L`` and every rescaling's log-determinant must already be inside it --
:class:`deepgen.models.density.ContinuousDensityModel` does this. For continuous data bits/dim is not
defined and these functions report the NLL in nats in the data's raw units instead (adding the
standardisation's log-determinant, ``DataInfo.log_scale``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

# The MCMC kernels live in deepgen.samplers; re-exported here so existing imports keep working.
from deepgen.samplers.mcmc import Kernel, mala_kernel, metropolis_flip_kernel

__all__ = [
    "LOG2",
    "Kernel",
    "NLLSummary",
    "ais_log_partition",
    "bits_per_dim",
    "importance_sampled_log_likelihood",
    "logmeanexp_with_stderr",
    "mala_kernel",
    "metropolis_flip_kernel",
    "summarize_nll",
]

LOG2 = math.log(2.0)


def bits_per_dim(nll_nats: float | torch.Tensor, num_dims: int):
    """``nll / (D ln 2)``: bits per dimension from an NLL in nats of discrete data with D dimensions."""
    return nll_nats / (num_dims * LOG2)


def logmeanexp_with_stderr(log_w: torch.Tensor, dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``log mean exp(log_w)`` along ``dim`` and its delta-method standard error, computed stably.

    For weights w_1..w_K with mean m, ``Var[log m] ~= Var[w] / (K m^2)``; the ratio
    ``mean(w^2) / m^2`` is formed in log space, so no weight is ever exponentiated on its own.
    Returns float64 tensors; the stderr is NaN when K = 1.
    """
    log_w = log_w.double()
    k = log_w.shape[dim]
    lme = torch.logsumexp(log_w, dim) - math.log(k)
    if k < 2:
        return lme, torch.full_like(lme, float("nan"))
    lme2 = torch.logsumexp(2 * log_w, dim) - math.log(k)
    rel_var = torch.clamp(torch.expm1(lme2 - 2 * lme), min=0.0) * k / (k - 1)  # unbiased var(w)/m^2
    return lme, torch.sqrt(rel_var / k)


@dataclass
class NLLSummary:
    """Dataset-level negative log-likelihood, labelled.

    Attributes:
        nll: mean NLL per example in nats (raw data units for continuous data).
        sem: standard error of that mean over examples (test-set sampling error).
        mc_stderr: Monte Carlo standard error of the mean for this test set (estimates only).
        bpd: bits/dim for discrete data, else None.
        kind, method: what the number is (exact / lower bound / estimate) and how it was computed.
        n: number of examples.
    """

    nll: float
    sem: float
    bpd: float | None
    kind: str
    method: str
    n: int
    mc_stderr: float | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def summarize_nll(
    values: torch.Tensor,
    kind: str,
    method: str,
    *,
    num_dims: int,
    discrete: bool,
    log_scale: float = 0.0,
    stderr: torch.Tensor | None = None,
) -> NLLSummary:
    """Summarise per-example log-likelihoods ``values`` (nats) into an :class:`NLLSummary`.

    Bound and estimate NLLs are upper bounds / estimates of the true NLL: lower is better in all cases.
    """
    v = values.double()
    n = v.numel()
    nll = -v.mean().item() + (0.0 if discrete else log_scale)
    sem = (v.std(unbiased=True).item() / math.sqrt(n)) if n > 1 else float("nan")
    mc = None
    if stderr is not None and torch.isfinite(stderr).all():
        mc = stderr.double().pow(2).sum().sqrt().item() / n
    bpd = bits_per_dim(nll, num_dims) if discrete else None
    return NLLSummary(nll, sem, bpd, str(kind), method, n, mc)


def importance_sampled_log_likelihood(
    log_weights: Callable[[int], torch.Tensor], k: int, chunk: int = 100
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generic importance-sampling estimate of log p(x) from ``log_weights(k) -> (B, k)``.

    ``log_weights(m)`` must return ``log p(x, z_j) - log q(z_j)`` for m fresh proposals z_j ~ q.
    Draws ``k`` in chunks of ``chunk`` and returns ``(estimate (B,), stderr (B,))`` in nats.
    """
    parts = [log_weights(min(chunk, k - i)) for i in range(0, k, chunk)]
    return logmeanexp_with_stderr(torch.cat(parts, 1))


# --------------------------------------------------------------------------------------------------
# Annealed importance sampling (Neal, 2001, arXiv:physics/9803008)
# --------------------------------------------------------------------------------------------------


def ais_log_partition(
    log_f0: Callable[[torch.Tensor], torch.Tensor],
    sample_f0: Callable[[int, torch.Generator | None], torch.Tensor],
    log_f1: Callable[[torch.Tensor], torch.Tensor],
    transition: Kernel,
    *,
    n_chains: int = 100,
    n_steps: int = 1000,
    betas: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """Estimate ``log Z1 - log Z0`` for unnormalised log-densities ``log_f0`` and ``log_f1``.

    Runs ``n_chains`` chains along the geometric path ``f_b = f0^(1-b) f1^b`` for ``b`` in ``betas``
    (default: a sigmoid schedule with ``n_steps`` steps). ``transition(x, b, generator)`` must leave
    ``f_b`` invariant (:func:`deepgen.samplers.metropolis_flip_kernel` for binary models,
    :func:`deepgen.samplers.mala_kernel` for continuous ones).
    ``sample_f0`` draws exact samples from the normalised ``f0``.

    Returns ``(estimate, stderr)`` in nats: ``log mean_i w_i`` over chains and its delta-method
    standard error. The estimate is unbiased for Z1/Z0, hence (by Jensen) a stochastic *lower* bound
    on ``log Z1 - log Z0`` that tightens as ``n_steps`` grows.
    """
    if betas is None:
        # Sigmoid schedule (Grosse et al., 2013): more temperatures near both ends.
        s = torch.linspace(-4, 4, n_steps + 1, dtype=torch.float64)
        b = torch.sigmoid(s)
        betas = (b - b[0]) / (b[-1] - b[0])
    betas = betas.double()
    x = sample_f0(n_chains, generator)
    log_w = torch.zeros(n_chains, dtype=torch.float64, device=x.device)
    with torch.no_grad():
        lf0, lf1 = log_f0(x).double(), log_f1(x).double()
        for i in range(1, len(betas)):
            log_w += (betas[i] - betas[i - 1]) * (lf1 - lf0)
            if i < len(betas) - 1:
                x = transition(x, float(betas[i]), generator)
                lf0, lf1 = log_f0(x).double(), log_f1(x).double()
    est, se = logmeanexp_with_stderr(log_w.unsqueeze(0))
    return est.item(), se.item()
