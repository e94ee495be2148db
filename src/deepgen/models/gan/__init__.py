"""Generative adversarial networks: ``gan`` (losses and stabilisers as options), ``dcgan``, ``cgan``,
``unrolled-gan``, ``infogan`` and the adversarial autoencoder ``aae``."""

from deepgen.models.gan.aae import AAE, AAEConfig
from deepgen.models.gan.cgan import CGAN, CGANConfig
from deepgen.models.gan.gan import DCGAN, GAN, DCGANConfig, GANConfig, UnrolledGAN
from deepgen.models.gan.infogan import InfoGAN, InfoGANConfig

__all__ = [
    "AAE", "AAEConfig", "CGAN", "CGANConfig", "DCGAN", "DCGANConfig", "GAN", "GANConfig",
    "InfoGAN", "InfoGANConfig", "UnrolledGAN",
]  # fmt: skip
