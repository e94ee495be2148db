"""Energy-based models: restricted Boltzmann machines (CD-k, PCD, exact and AIS likelihoods) and a
deep EBM trained with Langevin negatives from a replay buffer, and noise-conditional score networks."""

from deepgen.models.energy.ebm import EBM, EBMConfig
from deepgen.models.energy.ncsn import NCSN, NCSNConfig
from deepgen.models.energy.rbm import RBM, RBMConfig

__all__ = ["EBM", "EBMConfig", "NCSN", "NCSNConfig", "RBM", "RBMConfig"]
