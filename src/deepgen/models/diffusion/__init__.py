"""Diffusion models: DDPM (Ho et al. 2020) with improved DDPM's options, and score SDEs (Song et al. 2021).

Both share :mod:`deepgen.models.diffusion.base` (data scaling, the UNet or MLP denoiser, labels and
classifier-free guidance, SDEdit's strength, probability-flow ODE likelihoods); schedules and SDEs
come from :mod:`deepgen.diffusion`, samplers from :mod:`deepgen.samplers.diffusion`.
"""

from deepgen.models.diffusion.base import DenoiserOptions, DiffusionModel
from deepgen.models.diffusion.ddpm import DDPM, DDPMConfig, DDPMSampleConfig
from deepgen.models.diffusion.networks import TimeMLP
from deepgen.models.diffusion.score_sde import ScoreSDE, ScoreSDEConfig, ScoreSDESampleConfig
from deepgen.models.diffusion.sdes import ScheduleSDE, TimeScaledSDE

__all__ = [
    "DDPM",
    "DDPMConfig",
    "DDPMSampleConfig",
    "DenoiserOptions",
    "DiffusionModel",
    "ScheduleSDE",
    "ScoreSDE",
    "ScoreSDEConfig",
    "ScoreSDESampleConfig",
    "TimeMLP",
    "TimeScaledSDE",
]
