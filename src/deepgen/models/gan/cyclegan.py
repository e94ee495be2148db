"""CycleGAN (Zhu et al., 2017, arXiv:1703.10593): unpaired translation between two image domains.

Two generators, G: A -> B and F: B -> A, and two discriminators, D_B (real B against G(a)) and D_A
(real A against F(b)). Nothing pairs an example of A with one of B; what ties a translation to its
input is cycle consistency, F(G(a)) ~ a and G(F(b)) ~ b. The generators minimise

    L_GAN(G, D_B) + L_GAN(F, D_A) + lambda_cyc (|F(G(a)) - a|_1 + |G(F(b)) - b|_1)
                                  + lambda_id  (|G(b) - b|_1 + |F(a) - a|_1)

(the identity term, the paper's Section 5.2, keeps a generator from changing what is already in its
output domain) and the discriminators minimise the GAN loss, least squares by default as in the
paper (any of :mod:`deepgen.models.gan.losses`). Each L1 term is a mean over pixels.

Networks, after the paper's Appendix 7.2 scaled to small images: the ResNet generator (a 7x7
convolution, ``downsample`` stride-2 convolutions, ``res_blocks`` residual blocks, as many
nearest-neighbour upsamplings each followed by a 3x3 convolution, a 7x7 output convolution;
instance norm and ReLU throughout; reflection padding) and a PatchGAN discriminator that scores
overlapping patches (stride-2 3x3 convolutions to a map of logits). ``pool`` keeps the paper's
history of generated images (its Section 4, after Shrivastava et al., 2017, arXiv:1612.07828): once
the pool is full, each fake the discriminator is shown is, with probability 1/2, an older fake from
the pool (which the new one replaces), so D does not chase the generator's latest move alone. The
paper keeps 50; the default here is 0 (off).

A CycleGAN translates; it does not sample from noise. ``translate(x, direction=...)`` maps a batch
of domain A to B (``a2b``, the default) or of B to A (``b2a``); ``deepgen translate`` does the same
from the command line. ``sample`` raises :class:`~deepgen.models.base.UnsupportedError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from deepgen.config import check_positive
from deepgen.data.transforms import snap
from deepgen.errors import ConfigError, DataError
from deepgen.models.base import GenerativeModel, UnsupportedError, build_optimizer
from deepgen.models.gan import losses as L
from deepgen.nn.conv import downsample_sizes
from deepgen.registry import register


@dataclass(frozen=True)
class CycleGANConfig:
    """Options of :class:`CycleGAN`.

    Attributes:
        channels: the generators' channels after the first convolution (doubled per downsampling).
        downsample: stride-2 convolutions in each generator.
        res_blocks: residual blocks at the lowest resolution.
        d_channels: PatchGAN discriminator channels per stride-2 convolution.
        loss: the adversarial loss (``lsgan`` as in the paper).
        lambda_cyc: weight of the cycle-consistency L1 terms; lambda_id: of the identity terms.
        pool: generated images kept per direction for the discriminator updates (0: none; paper: 50).
    """

    channels: int = 32
    downsample: int = 2
    res_blocks: int = 4
    d_channels: tuple[int, ...] = (32, 64)
    loss: Literal["minimax", "nonsaturating", "lsgan", "wgan-gp", "hinge"] = "lsgan"
    lambda_cyc: float = 10.0
    lambda_id: float = 5.0
    pool: int = 0

    def __post_init__(self):
        check_positive(self, "channels", "res_blocks")
        if self.downsample < 0 or self.lambda_cyc < 0 or self.lambda_id < 0 or self.pool < 0:
            raise ConfigError("CycleGANConfig: downsample, lambda_cyc, lambda_id and pool must be >= 0")


@dataclass(frozen=True)
class CycleGANTranslateConfig:
    """Translation options: ``direction`` a2b (G) or b2a (F)."""

    direction: Literal["a2b", "b2a"] = "a2b"


def _conv(c_in, c_out, k, stride=1):
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, padding_mode="reflect" if k > 1 else "zeros")


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.net = nn.Sequential(
            _conv(c, c, 3),
            nn.InstanceNorm2d(c, affine=True),
            nn.ReLU(),
            _conv(c, c, 3),
            nn.InstanceNorm2d(c, affine=True),
        )

    def forward(self, x):
        return x + self.net(x)


class ResnetGenerator(nn.Module):
    """Image (B, C, H, W) -> logits (B, C_out, H, W) of the same size (any H, W, odd ones included)."""

    def __init__(self, c_in, c_out, h, w, channels=32, downsample=2, res_blocks=4):
        super().__init__()
        layers = [_conv(c_in, channels, 7), nn.InstanceNorm2d(channels, affine=True), nn.ReLU()]
        c = channels
        for _ in range(downsample):
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * c, affine=True), nn.ReLU()]
            c *= 2
        layers += [ResBlock(c) for _ in range(res_blocks)]
        hs, ws = downsample_sizes(h, downsample)[::-1], downsample_sizes(w, downsample)[::-1]
        for i in range(downsample):
            layers += [
                nn.Upsample(size=(hs[i + 1], ws[i + 1]), mode="nearest"),
                _conv(c, c // 2, 3),
                nn.InstanceNorm2d(c // 2, affine=True),
                nn.ReLU(),
            ]
            c //= 2
        layers.append(_conv(c, c_out, 7))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class ImagePool(nn.Module):
    """A history of ``size`` generated images (buffers, so a resumed run continues with the same pool).

    :meth:`query` fills the pool with the first fakes it sees and returns them unchanged; once it is
    full, each new fake is returned with probability 1/2, and otherwise swapped for a uniformly
    chosen stored one (which it replaces). Random numbers come from torch's global generator, which
    the trainer seeds and checkpoints.
    """

    def __init__(self, size: int, shape):
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, fake: torch.Tensor) -> torch.Tensor:
        out = fake.detach().clone()
        for i in range(len(out)):
            n = int(self.count)
            if n < self.size:
                self.images[n] = out[i]
                self.count += 1
            elif torch.rand(()) < 0.5:
                j = int(torch.randint(self.size, ()))
                out[i], self.images[j] = self.images[j].clone(), out[i].clone()
        return out


class PatchDiscriminator(nn.Module):
    """Image (B, C, H, W) -> patch logits (B, h * w): one score per overlapping receptive field."""

    def __init__(self, c_in, channels=(32, 64)):
        super().__init__()
        layers, c = [], c_in
        for i, ch in enumerate(channels):
            layers += [nn.Conv2d(c, ch, 3, stride=2, padding=1)]
            if i > 0:
                layers.append(nn.InstanceNorm2d(ch, affine=True))
            layers.append(nn.LeakyReLU(0.2))
            c = ch
        layers.append(nn.Conv2d(c, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).flatten(1)


@register("cyclegan")
class CycleGAN(GenerativeModel):
    """CycleGAN: two ResNet generators and two PatchGAN discriminators, cycle and identity L1 losses."""

    family = "gan"
    Config = CycleGANConfig
    SampleConfig = CycleGANTranslateConfig
    data_kinds = ("domains",)
    density_summary = "none"
    loss_units = "generator + discriminator loss"
    samples_from_noise = False
    test_options = {"channels": 4, "downsample": 1, "res_blocks": 1, "d_channels": (4, 8), "pool": 4}
    train_defaults = {"lr": 2e-4, "betas": (0.5, 0.999)}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        b = info.domain_b
        if not info.is_image or tuple(b.shape) != tuple(info.shape):
            raise DataError(
                f"cyclegan translates between image domains of one shape; {info.name} has A {tuple(info.shape)} "
                f"and B {tuple(b.shape)}"
            )
        c, h, w = info.shape
        gen = dict(channels=cfg.channels, downsample=cfg.downsample, res_blocks=cfg.res_blocks)
        self.gen_ab = ResnetGenerator(c, c, h, w, **gen)
        self.gen_ba = ResnetGenerator(c, c, h, w, **gen)
        self.disc_a = PatchDiscriminator(c, cfg.d_channels)
        self.disc_b = PatchDiscriminator(c, cfg.d_channels)
        self.squash = info.is_discrete  # data in [0, 1]: sigmoid outputs
        self.pool_a = ImagePool(cfg.pool, info.shape) if cfg.pool else None  # fakes of A, for D_A
        self.pool_b = ImagePool(cfg.pool, b.shape) if cfg.pool else None

    def why_no_density(self) -> str:
        return (
            "a CycleGAN is a pair of deterministic translators, not a density; "
            "evaluate translations with classifiers or FID"
        )

    def configure_optimizers(self, cfg):
        return {
            "gen": build_optimizer([*self.gen_ab.parameters(), *self.gen_ba.parameters()], cfg),
            "disc": build_optimizer([*self.disc_a.parameters(), *self.disc_b.parameters()], cfg),
        }

    def a2b(self, x: torch.Tensor) -> torch.Tensor:
        """G(x): domain A -> B, continuous values."""
        out = self.gen_ab(x)
        return torch.sigmoid(out) if self.squash else out

    def b2a(self, x: torch.Tensor) -> torch.Tensor:
        """F(x): domain B -> A, continuous values."""
        out = self.gen_ba(x)
        return torch.sigmoid(out) if self.squash else out

    def cycle_loss(self, a: torch.Tensor, b: torch.Tensor, fake_b=None, fake_a=None) -> torch.Tensor:
        """|F(G(a)) - a|_1 + |G(F(b)) - b|_1, each a mean over pixels."""
        fake_b = self.a2b(a) if fake_b is None else fake_b
        fake_a = self.b2a(b) if fake_a is None else fake_a
        return (self.b2a(fake_b) - a).abs().mean() + (self.a2b(fake_a) - b).abs().mean()

    def identity_loss(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """|G(b) - b|_1 + |F(a) - a|_1."""
        return (self.a2b(b) - b).abs().mean() + (self.b2a(a) - a).abs().mean()

    def train_step(self, x, y, ctx):
        cfg, a, b = self.config, x, y
        fake_b, fake_a = self.a2b(a), self.b2a(b)
        for d in (self.disc_a, self.disc_b):
            d.requires_grad_(False)
        try:
            adv = L.generator_loss(cfg.loss, self.disc_b(fake_b)) + L.generator_loss(cfg.loss, self.disc_a(fake_a))
        finally:
            for d in (self.disc_a, self.disc_b):
                d.requires_grad_(True)
        cyc = self.cycle_loss(a, b, fake_b, fake_a)
        idt = self.identity_loss(a, b) if cfg.lambda_id else a.new_zeros(())
        g_loss = adv + cfg.lambda_cyc * cyc + cfg.lambda_id * idt
        ctx.step(g_loss, "gen")
        fake_b, fake_a = fake_b.detach(), fake_a.detach()
        if self.pool_a is not None:
            fake_b, fake_a = self.pool_b.query(fake_b), self.pool_a.query(fake_a)
        # halved, as in the paper, so D learns slower than G
        d_loss = 0.5 * (self._d_loss(self.disc_b, b, fake_b) + self._d_loss(self.disc_a, a, fake_a))
        ctx.step(d_loss, "disc")
        return {
            "loss": (g_loss + d_loss).detach(),
            "g_adv": adv.detach(),
            "cycle": cyc.detach(),
            "identity": idt.detach(),
            "d_loss": d_loss.detach(),
        }

    def _d_loss(self, disc, real, fake):
        loss = L.discriminator_loss(self.config.loss, disc(real), disc(fake))
        if self.config.loss == "wgan-gp":
            loss = loss + 10.0 * L.gradient_penalty(lambda t: disc(t).mean(1), real, fake)
        return loss

    def loss(self, x, y=None):
        """Cycle and identity losses and both adversarial terms on (A, B) batches, for monitoring."""
        cfg = self.config
        fake_b, fake_a = self.a2b(x), self.b2a(y)
        adv = L.generator_loss(cfg.loss, self.disc_b(fake_b)) + L.generator_loss(cfg.loss, self.disc_a(fake_a))
        cyc = self.cycle_loss(x, y, fake_b, fake_a)
        idt = self.identity_loss(x, y)
        return {"loss": adv + cfg.lambda_cyc * cyc + cfg.lambda_id * idt, "cycle": cyc, "identity": idt}

    @torch.no_grad()
    def evaluate(self, x, y=None):
        out = {"identity_a": (self.b2a(x) - x).abs().mean().item()}
        out["cycle_a"] = (self.b2a(self.a2b(x)) - x).abs().mean().item()
        return out

    @torch.no_grad()
    def translate(self, x, *, generator=None, **options):
        opts = self.sample_options(**options)
        if opts.direction == "a2b":
            out, info = self.a2b(x), self.info.domain_b
        else:
            out, info = self.b2a(x), self.info
        return snap(out, info.levels) if info.is_discrete else out

    def _sample(self, n, options, *, generator, y):
        raise UnsupportedError(
            "cyclegan translates examples between its two domains; it does not sample from noise: use "
            "translate(x) (deepgen translate RUN --data DOMAINS)"
        )
