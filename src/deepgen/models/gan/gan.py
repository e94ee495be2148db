"""Generative adversarial network (Goodfellow et al., 2014, arXiv:1406.2661) with the
non-saturating generator loss, and the DCGAN architecture for images (Radford et al., 2016,
arXiv:1511.06434).

A generator G maps z ~ N(0, I) to data; a discriminator D outputs a logit for "real". With
sigma the logistic function, each step makes ``d_steps`` discriminator updates on

    L_D = -E_x log sigma(D(x)) - E_z log(1 - sigma(D(G(z))))

and one generator update on the non-saturating loss L_G = -E_z log sigma(D(G(z))), which has the
same fixed point as the minimax game but strong gradients early in training.

Sampling options (:class:`GANSampleConfig`): ``temperature`` scales z, and ``truncation`` draws z
from a standard normal truncated to [-t, t] per coordinate, the truncation trick of BigGAN (Brock,
Donahue, Simonyan, 2019, arXiv:1809.11096), which trades diversity for fidelity.

A GAN defines a sampler, not a density: ``log_prob`` raises :class:`~deepgen.errors.NoDensityError`.
Evaluate it with sample-quality metrics (FID, KID, precision/recall).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from deepgen.config import check_positive
from deepgen.models.base import GenerativeModel, adam
from deepgen.nn import MLP, ConvDecoder, ConvEncoder, arch_for
from deepgen.registry import register


@dataclass(frozen=True)
class GANConfig:
    """Options of :class:`GAN`.

    Attributes:
        latent_dim: size of z.
        arch: ``mlp``, ``dcgan`` (images only) or ``auto`` (dcgan for images).
        hidden: MLP hidden sizes of both networks.
        g_channels: generator channels, lowest resolution first; d_channels: discriminator channels.
        d_steps: discriminator updates per generator update (each on a fresh batch).
        lr_d, lr_g: per-network learning rates (default: the trainer's ``lr``).
    """

    latent_dim: int = 32
    arch: Literal["auto", "mlp", "dcgan"] = "auto"
    hidden: tuple[int, ...] = (256, 256)
    g_channels: tuple[int, ...] = (128, 64)
    d_channels: tuple[int, ...] = (64, 128)
    d_steps: int = 1
    loss: Literal["nonsaturating"] = "nonsaturating"
    lr_d: float | None = None
    lr_g: float | None = None

    def __post_init__(self):
        check_positive(self, "latent_dim", "d_steps", "lr_d", "lr_g")


@dataclass(frozen=True)
class GANSampleConfig:
    """Sampling options of :class:`GAN`.

    Attributes:
        temperature: scale of z (1 samples the trained prior N(0, I)).
        truncation: draw each coordinate of z from N(0, 1) truncated to [-t, t] (by the inverse
            CDF, one uniform draw per coordinate); None: no truncation.
    """

    temperature: float = 1.0
    truncation: float | None = None

    def __post_init__(self):
        check_positive(self, "temperature", "truncation")


@register("gan")
class GAN(GenerativeModel):
    """GAN with non-saturating loss; MLP networks for vectors, DCGAN networks for images."""

    family = "gan"
    Config = GANConfig
    SampleConfig = GANSampleConfig
    density_summary = "none"
    loss_units = "nats, binary cross-entropy per example"
    test_options = {"latent_dim": 4, "hidden": (32, 32), "g_channels": (16, 8), "d_channels": (8, 16)}
    train_defaults = {"lr": 2e-4, "betas": (0.5, 0.999)}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        self.arch = arch_for(info, cfg.arch, model=self.name, conv="dcgan")
        if self.arch == "dcgan":
            self.generator = ConvDecoder(cfg.latent_dim, info.shape, cfg.g_channels, norm="batch", act="relu")
            self.discriminator = ConvEncoder(info.shape, 1, cfg.d_channels, norm="batch", act="leaky_relu")
        else:
            self.generator = MLP(cfg.latent_dim, info.dim, cfg.hidden, act="relu")
            self.discriminator = MLP(info.dim, 1, cfg.hidden, act="leaky_relu")
        # Data in [0, 1] (discrete data) get a sigmoid output; continuous data are unbounded.
        self.squash = info.is_discrete

    def why_no_density(self) -> str:
        return (
            "a GAN defines a sampler, not a density: log D(x) is the discriminator's belief that x is "
            "real, not log p(x); evaluate it with FID, KID or precision/recall"
        )

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """G(z) in data space (continuous values; :meth:`sample` snaps them to the lattice)."""
        out = self.generator(z).view(len(z), *self.info.shape)
        return torch.sigmoid(out) if self.squash else out

    def _z(self, n, device, generator=None, options: GANSampleConfig | None = None):
        """z ~ N(0, I) (n, latent_dim), or its tempered / truncated version for sampling ``options``."""
        shape = (n, self.config.latent_dim)
        if options is None or options.truncation is None:
            z = torch.randn(shape, device=device, generator=generator)
        else:
            # inverse CDF of N(0, 1) restricted to [-t, t]: exact, one draw per coordinate, no rejection loop
            lo = 0.5 * math.erfc(options.truncation / math.sqrt(2))  # Phi(-t)
            u = torch.rand(shape, device=device, generator=generator)
            z = torch.special.ndtri(lo + (1 - 2 * lo) * u).clamp(-options.truncation, options.truncation)
        return z if options is None else options.temperature * z

    def configure_optimizers(self, cfg):
        return {
            "disc": adam(self.discriminator.parameters(), cfg, lr=self.config.lr_d),
            "gen": adam(self.generator.parameters(), cfg, lr=self.config.lr_g),
        }

    def discriminator_loss(self, x: torch.Tensor, fake: torch.Tensor):
        d_real, d_fake = self.discriminator(x), self.discriminator(fake)
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean(), d_real, d_fake

    def train_step(self, x, y, ctx):
        for i in range(self.config.d_steps):
            if i > 0:
                x, _ = ctx.next_batch()
            with torch.no_grad():
                fake = self.generate(self._z(len(x), x.device))
            d_loss, d_real, d_fake = self.discriminator_loss(x, fake)
            ctx.step(d_loss, "disc")
        self.discriminator.requires_grad_(False)
        try:
            g_loss = F.softplus(-self.discriminator(self.generate(self._z(len(x), x.device)))).mean()
            ctx.step(g_loss, "gen")
        finally:
            self.discriminator.requires_grad_(True)
        return {
            "loss": (d_loss + g_loss).detach(),
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "d_real": torch.sigmoid(d_real).mean().detach(),
            "d_fake": torch.sigmoid(d_fake).mean().detach(),
        }

    def loss(self, x, y=None):
        """Both losses on ``x`` without updating anything (for monitoring)."""
        fake = self.generate(self._z(len(x), x.device))
        d_loss, _, _ = self.discriminator_loss(x, fake.detach())
        g_loss = F.softplus(-self.discriminator(fake)).mean()
        return {"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss}

    @torch.no_grad()
    def evaluate(self, x, y=None):
        fake = self.generate(self._z(len(x), x.device))
        return {
            "d_real": torch.sigmoid(self.discriminator(x)).mean().item(),
            "d_fake": torch.sigmoid(self.discriminator(fake)).mean().item(),
        }

    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        return self.to_data_space(self.generate(self._z(n, self.device, generator, options)))
