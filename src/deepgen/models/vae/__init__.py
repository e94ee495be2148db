"""Variational autoencoders: the VAE, IWAE, Gumbel-softmax VAE, VQ-VAE and a hierarchical VAE."""

from deepgen.models.vae.gumbel import GumbelVAE, GumbelVAEConfig
from deepgen.models.vae.hvae import HVAE, HVAEConfig
from deepgen.models.vae.iwae import IWAE, IWAEConfig
from deepgen.models.vae.vae import VAE, VAEConfig
from deepgen.models.vae.vqvae import VQVAE, VQVAEConfig

__all__ = [
    "VAE",
    "VAEConfig",
    "IWAE",
    "IWAEConfig",
    "GumbelVAE",
    "GumbelVAEConfig",
    "VQVAE",
    "VQVAEConfig",
    "HVAE",
    "HVAEConfig",
]
