"""Samplers shared across model families: pure functions of callables, never of model classes.

- Langevin family (:mod:`deepgen.samplers.langevin`): :func:`langevin` (ULA / SGLD),
  :func:`annealed_langevin` (NCSN), :func:`score_from_log_prob`.
- Exact MCMC (:mod:`deepgen.samplers.mcmc`): :func:`mala`, :func:`metropolis_flip`, :func:`gibbs`,
  and the AIS kernels :func:`mala_kernel`, :func:`metropolis_flip_kernel`.
- ODEs (:mod:`deepgen.samplers.ode`, :mod:`deepgen.samplers.divergence`): :func:`odeint`
  (Euler, Heun, RK4, adaptive RK45), :func:`odeint_log_density` (continuous change of variables)
  with :func:`exact_divergence` or :func:`hutchinson_divergence`.
- Diffusion (:mod:`deepgen.samplers.diffusion`): :func:`ddpm_sample` (ancestral, respaced),
  :func:`ddim_sample`, :func:`heun_sample` (EDM), :func:`dpm_solver_pp_sample` (DPM-Solver++(2M)) for
  ``eps_fn(x_t, t)`` on a :class:`deepgen.diffusion.DiffusionSchedule`; :func:`sde_sample`
  (predictor-corrector), :func:`probability_flow_sample` and :func:`probability_flow_log_likelihood`
  for ``score_fn(x, t)`` on an SDE; adapters :func:`eps_from_x0_fn`, :func:`eps_from_v_fn`,
  :func:`score_from_eps`; :func:`sampling_timesteps`; data consistency for inverse problems,
  :func:`replacement_constraint` (RePaint, ILVR) and :func:`noise_matched_start` (noisy observations).

Conventions: ``log_prob(x) -> (B,)``; ``score(x)`` or ``score(x, sigma)`` returns the shape of ``x``;
every sampler takes ``generator`` for all its randomness, works on any shape (B, ...) on the device
of its input, works under ``torch.no_grad()`` and returns detached tensors (the ODE integrators stay
differentiable when autograd is enabled).
"""

from deepgen.samplers.diffusion import (
    ddim_sample,
    ddpm_sample,
    dpm_solver_pp_sample,
    eps_from_v_fn,
    eps_from_x0_fn,
    heun_sample,
    noise_matched_start,
    probability_flow_log_likelihood,
    probability_flow_sample,
    replacement_constraint,
    sampling_timesteps,
    score_from_eps,
    sde_sample,
)
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
    "ddim_sample",
    "ddpm_sample",
    "dpm_solver_pp_sample",
    "eps_from_v_fn",
    "eps_from_x0_fn",
    "exact_divergence",
    "gibbs",
    "heun_sample",
    "hutchinson_divergence",
    "langevin",
    "mala",
    "mala_kernel",
    "metropolis_flip",
    "metropolis_flip_kernel",
    "noise_matched_start",
    "odeint",
    "odeint_log_density",
    "probability_flow_log_likelihood",
    "probability_flow_sample",
    "replacement_constraint",
    "sample_probes",
    "sampling_timesteps",
    "score_from_eps",
    "score_from_log_prob",
    "sde_sample",
]
