"""Diffusion processes shared by DDPM, DDIM and score-SDE models: noise schedules and their closed forms.

- Discrete schedules (:mod:`deepgen.diffusion.schedule`): :class:`DiffusionSchedule` (DDPM's tables,
  ``q_sample``, ``q_posterior``, eps/x0/v conversions, the variational bound's terms), built from
  :func:`linear_betas` (Ho et al., 2020) or :func:`cosine_betas` (Nichol & Dhariwal, 2021).
- Continuous-time SDEs (Song et al., 2021): :class:`VPSDE`, :class:`SubVPSDE`, :class:`VESDE`.
- Likelihood pieces: :func:`normal_kl`, :func:`discretized_gaussian_log_mass`.

The samplers that run these processes backwards live in :mod:`deepgen.samplers.diffusion`.
"""

from deepgen.diffusion.schedule import (
    SDE,
    VESDE,
    VPSDE,
    DiffusionSchedule,
    SubVPSDE,
    cosine_betas,
    discretized_gaussian_log_mass,
    linear_betas,
    normal_kl,
)

__all__ = [
    "SDE",
    "VESDE",
    "VPSDE",
    "DiffusionSchedule",
    "SubVPSDE",
    "cosine_betas",
    "discretized_gaussian_log_mass",
    "linear_betas",
    "normal_kl",
]
