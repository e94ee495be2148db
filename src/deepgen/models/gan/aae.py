"""Adversarial autoencoder (Makhzani et al., 2015, arXiv:1511.05644).

An autoencoder whose aggregated posterior q(z) = E_x q(z | x) is matched to a chosen prior p(z) by
a GAN in latent space: a discriminator D tells codes drawn from p(z) from codes of training examples,
and the encoder, as D's generator, learns to make its codes indistinguishable. Where a VAE pulls
every q(z | x) towards p(z) through a KL term, the AAE only constrains their mixture, so any prior
one can sample from works, including ones without a closed-form density (here a Gaussian, or a
mixture of Gaussians on a circle as in the paper's Figure 2). Samples come from decoding z ~ p(z).

Each training step makes one discriminator update on the non-saturating GAN loss (real: prior codes,
fake: encoded codes, detached), then one autoencoder update on

    reconstruction(x, dec(enc(x))) + adv_weight * (-log sigma(D(enc(x))))

(the paper alternates a reconstruction phase and a regularisation phase with separate optimisers;
one update on their sum with the same weight is the common implementation). The reconstruction is
the Bernoulli cross-entropy per dimension for data in [0, 1] and the squared error for continuous
data. The encoder is deterministic (the paper's first choice), so the AAE has no tractable
likelihood: its density is labelled ``none``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from deepgen.config import check_positive
from deepgen.errors import ConfigError
from deepgen.models.base import GenerativeModel, build_optimizer
from deepgen.nn import MLP, ConvDecoder, ConvEncoder, arch_for
from deepgen.registry import register


@dataclass(frozen=True)
class AAEConfig:
    """Options of :class:`AAE`.

    Attributes:
        latent_dim: size of z.
        arch: ``mlp``, ``conv`` (images) or ``auto``.
        hidden: MLP sizes of the encoder and decoder; channels: conv channels (encoder order).
        d_hidden: the latent discriminator's MLP sizes.
        prior: ``gaussian`` (N(0, I)) or ``mixture`` (``components`` Gaussians of std ``mixture_std``
            with means on a circle of radius ``mixture_radius`` in the first two dimensions).
        adv_weight: weight of the adversarial term in the autoencoder's loss.
    """

    latent_dim: int = 8
    arch: Literal["auto", "mlp", "conv"] = "auto"
    hidden: tuple[int, ...] = (256, 256)
    channels: tuple[int, ...] = (32, 64)
    d_hidden: tuple[int, ...] = (256, 256)
    prior: Literal["gaussian", "mixture"] = "gaussian"
    components: int = 10
    mixture_radius: float = 4.0
    mixture_std: float = 0.5
    adv_weight: float = 1.0

    def __post_init__(self):
        check_positive(self, "latent_dim", "components", "mixture_radius", "mixture_std")
        if self.prior == "mixture" and self.latent_dim < 2:
            raise ConfigError("AAEConfig: prior=mixture places its means in two dimensions; latent_dim must be >= 2")
        if self.adv_weight < 0:
            raise ConfigError("AAEConfig.adv_weight must be >= 0")


@register("aae")
class AAE(GenerativeModel):
    """Adversarial autoencoder: the encoder's aggregated posterior matched to a prior by a latent GAN."""

    family = "gan"
    Config = AAEConfig
    density_summary = "none"
    loss_units = "reconstruction + adversarial loss"
    test_options = {"latent_dim": 2, "hidden": (32,), "channels": (8, 16), "d_hidden": (32,)}
    train_defaults = {"lr": 1e-3, "betas": (0.5, 0.999)}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        self.arch = arch_for(info, cfg.arch, model=self.name)
        if self.arch == "conv":
            self.encoder = ConvEncoder(info.shape, cfg.latent_dim, cfg.channels)
            self.decoder = ConvDecoder(cfg.latent_dim, info.shape, tuple(reversed(cfg.channels)))
        else:
            self.encoder = MLP(info.dim, cfg.latent_dim, cfg.hidden)
            self.decoder = MLP(cfg.latent_dim, info.dim, tuple(reversed(cfg.hidden)))
        self.discriminator = MLP(cfg.latent_dim, 1, cfg.d_hidden, act="leaky_relu")
        self.bernoulli = info.is_discrete  # data in [0, 1]: cross-entropy and a sigmoid output
        k = cfg.components
        angles = torch.arange(k) * (2 * math.pi / k)
        means = torch.zeros(k, cfg.latent_dim)
        if cfg.latent_dim >= 2:
            means[:, 0], means[:, 1] = cfg.mixture_radius * angles.cos(), cfg.mixture_radius * angles.sin()
        self.register_buffer("mixture_means", means)

    def why_no_density(self) -> str:
        return (
            "an adversarial autoencoder has a deterministic encoder and a prior matched by a GAN, "
            "not a likelihood; evaluate it with FID, KID or precision/recall"
        )

    def configure_optimizers(self, cfg):
        return {
            "disc": build_optimizer(self.discriminator.parameters(), cfg),
            "ae": build_optimizer([*self.encoder.parameters(), *self.decoder.parameters()], cfg),
        }

    latent_description = "the encoder's code z (deterministic)"

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(x if self.arch == "conv" else x.flatten(1))

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(len(z), *self.info.shape)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = self.decode_logits(z)
        return torch.sigmoid(out) if self.bernoulli else out

    def prior_sample(self, n: int, generator=None) -> torch.Tensor:
        cfg, dev = self.config, self.mixture_means.device
        eps = torch.randn(n, cfg.latent_dim, device=dev, generator=generator)
        if cfg.prior == "gaussian":
            return eps
        k = torch.randint(0, cfg.components, (n,), device=dev, generator=generator)
        return self.mixture_means[k] + cfg.mixture_std * eps

    def reconstruction(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Per-dimension reconstruction loss (mean over the batch and dimensions)."""
        out = self.decode_logits(z)
        if self.bernoulli:
            return F.binary_cross_entropy_with_logits(out, x)
        return (out - x).pow(2).mean()

    def train_step(self, x, y, ctx):
        z_fake = self.encode(x)
        z_real = self.prior_sample(len(x))
        d_real, d_fake = self.discriminator(z_real), self.discriminator(z_fake.detach())
        d_loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        ctx.step(d_loss, "disc")
        self.discriminator.requires_grad_(False)
        try:
            adv = F.softplus(-self.discriminator(z_fake)).mean()
        finally:
            self.discriminator.requires_grad_(True)
        rec = self.reconstruction(x, z_fake)
        ctx.step(rec + self.config.adv_weight * adv, "ae")
        return {
            "loss": (rec + self.config.adv_weight * adv).detach(),
            "reconstruction": rec.detach(),
            "d_loss": d_loss.detach(),
            "adv": adv.detach(),
            "d_real": torch.sigmoid(d_real).mean().detach(),
            "d_fake": torch.sigmoid(d_fake).mean().detach(),
        }

    def loss(self, x, y=None):
        z = self.encode(x)
        rec = self.reconstruction(x, z)
        adv = F.softplus(-self.discriminator(z)).mean()
        return {"loss": rec + self.config.adv_weight * adv, "reconstruction": rec, "adv": adv}

    @torch.no_grad()
    def evaluate(self, x, y=None):
        z = self.encode(x)
        return {
            "reconstruction": self.reconstruction(x, z).item(),
            "d_fake": torch.sigmoid(self.discriminator(z)).mean().item(),
            "latent_mean_norm": z.mean(0).norm().item(),
        }

    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        return self.to_data_space(self.decode(self.prior_sample(n, generator)))
