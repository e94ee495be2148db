"""Energy-based models: restricted Boltzmann machines (CD-k, PCD, exact and AIS likelihoods)."""

from deepgen.models.energy.rbm import RBM, RBMConfig

__all__ = ["RBM", "RBMConfig"]
