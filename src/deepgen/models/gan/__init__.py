"""Generative adversarial networks."""

from deepgen.models.gan.gan import GAN, GANConfig

__all__ = ["GAN", "GANConfig"]
