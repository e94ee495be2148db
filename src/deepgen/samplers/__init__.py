"""Samplers shared across model families: pure functions of callables, never of model classes.

- Langevin family (:mod:`deepgen.samplers.langevin`): :func:`langevin` (ULA / SGLD),
  :func:`annealed_langevin` (NCSN), :func:`score_from_log_prob`.
- Exact MCMC (:mod:`deepgen.samplers.mcmc`): :func:`mala`, :func:`metropolis_flip`, :func:`gibbs`,
  and the AIS kernels :func:`mala_kernel`, :func:`metropolis_flip_kernel`.
- ODEs (:mod:`deepgen.samplers.ode`, :mod:`deepgen.samplers.divergence`): :func:`odeint`
  (Euler, Heun, RK4, adaptive RK45), :func:`odeint_log_density` (continuous change of variables)
  with :func:`exact_divergence` or :func:`hutchinson_divergence`.

Conventions: ``log_prob(x) -> (B,)``; ``score(x)`` or ``score(x, sigma)`` returns the shape of ``x``;
every sampler takes ``generator`` for all its randomness, works on any shape (B, ...) on the device
of its input, works under ``torch.no_grad()`` and returns detached tensors (the ODE integrators stay
differentiable when autograd is enabled).
"""

from deepgen.samplers.divergence import exact_divergence, hutchinson_divergence, sample_probes
from deepgen.samplers.langevin import annealed_langevin, langevin, score_from_log_prob
from deepgen.samplers.mcmc import (
    Kernel,
    MCMCResult,
    gibbs,
    mala,
    mala_kernel,
    metropolis_flip,
    metropolis_flip_kernel,
)
from deepgen.samplers.ode import odeint, odeint_log_density

__all__ = [
    "Kernel",
    "MCMCResult",
    "annealed_langevin",
    "exact_divergence",
    "gibbs",
    "hutchinson_divergence",
    "langevin",
    "mala",
    "mala_kernel",
    "metropolis_flip",
    "metropolis_flip_kernel",
    "odeint",
    "odeint_log_density",
    "sample_probes",
    "score_from_log_prob",
]
