"""Variational autoencoders."""

from deepgen.models.vae.vae import VAE, VAEConfig

__all__ = ["VAE", "VAEConfig"]
