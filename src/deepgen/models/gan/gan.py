"""Generative adversarial networks (Goodfellow et al., 2014, arXiv:1406.2661): one model, its losses and
stabilisers as options; the DCGAN image networks (Radford et al., 2016, arXiv:1511.06434); the
conditional GAN (Mirza & Osindero, 2014, arXiv:1411.1784) with a concatenation, projection
(Miyato & Koyama, 2018, arXiv:1802.05637) or auxiliary-classifier discriminator (Odena et al., 2017,
arXiv:1610.09585); and the unrolled GAN (Metz et al., 2017, arXiv:1611.02163).

A generator G maps z ~ N(0, I) to data; a discriminator (critic) D scores examples. Each training
step makes ``d_steps`` discriminator updates on L_D, each on a fresh batch, then one generator update
on L_G, for the loss pair chosen by ``loss`` (see :mod:`deepgen.models.gan.losses`: minimax,
non-saturating, least squares, WGAN-GP, hinge). Stabilisers, all options of ``gan``:

* ``spectral_norm``: every discriminator layer divided by its largest singular value (one power
  iteration per step; Miyato et al., 2018, arXiv:1802.05957), a 1-Lipschitz discriminator.
* ``r1``: gamma of the R1 penalty gamma/2 E||grad D(x)||^2 on reals (Mescheder et al., 2018).
* ``gp``: the weight lambda of WGAN-GP's gradient penalty (used with ``loss=wgan-gp``).
* ``augment``: DiffAugment transforms applied to reals and fakes alike (images; Zhao et al., 2020).
* ``lr_d``, ``lr_g``: separate learning rates, the two time-scale update rule (TTUR; Heusel et al.,
  2017, arXiv:1706.08500).
* EMA of the generator: the trainer's ``--ema-decay`` (the averaged weights are what ``sample`` uses).
* ``unroll``: the generator's loss is taken against the discriminator after K further (simulated,
  differentiable) Adam steps, and its gradient flows through them (Metz et al., 2017), which
  penalises a generator for moving to where the discriminator would follow.
* ``pack``: PacGAN (Lin et al., 2018, arXiv:1712.04086): the discriminator scores *packs* of m
  examples at once (concatenated: m times the input features, or m times the channels of an image),
  all real or all fake. A pack of fakes from a collapsed generator is visibly less diverse than a
  pack of reals, so D can penalise the collapse that a per-example D cannot see. Batches are cut to
  a multiple of m. Not with labels (``cgan``) or InfoGAN's per-example code.

Conditional models (``cgan``) receive the labels: G sees z concatenated with a one-hot label; D sees
the label as extra input channels (``cond=concat``), through the projection term
``<embed(y), phi(x)>`` added to its output (``cond=projection``), or not at all and instead predicts
it with an auxiliary classifier head (``cond=ac``, AC-GAN: Odena, Olah & Shlens, 2017,
arXiv:1610.09585), whose cross-entropy on reals and fakes joins L_D and on fakes joins L_G, weighted
by ``ac_weight``. Fakes are generated with the labels of the real batch, so both halves of L_D have
the same classes.

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
from torch import nn
from torch.func import functional_call

from deepgen.config import check_positive
from deepgen.errors import ConfigError, DataError
from deepgen.models.base import GenerativeModel, build_optimizer
from deepgen.models.gan import losses as L
from deepgen.models.gan.augment import check_policy, diff_augment
from deepgen.nn import MLP, ConvDecoder, ConvEncoder, arch_for
from deepgen.nn.conv import spectral_normed
from deepgen.registry import register


@dataclass(frozen=True)
class GANConfig:
    """Options of :class:`GAN` (see the module docstring for what each does).

    Attributes:
        latent_dim: size of z.
        arch: ``mlp``, ``dcgan`` (images only) or ``auto`` (dcgan for images).
        hidden: MLP hidden sizes of both networks.
        g_channels: generator channels, lowest resolution first; d_channels: discriminator channels.
        loss: minimax, nonsaturating, lsgan, wgan-gp or hinge.
        d_steps: discriminator updates per generator update (each on a fresh batch).
        d_norm: normalisation in the DCGAN discriminator: ``auto`` is batch norm for the logistic and
            least-squares losses and none for WGAN-GP (its penalty is per example) and with spectral norm.
        spectral_norm: spectral normalisation of every discriminator layer.
        gp: gradient-penalty weight (WGAN-GP's lambda); used with ``loss=wgan-gp``.
        r1: R1 penalty gamma (0: off).
        augment: DiffAugment transforms (``color``, ``translation``, ``cutout``), images only.
        unroll: discriminator steps to unroll in the generator's loss (0: a plain GAN).
        lr_d, lr_g: per-network learning rates (default: the trainer's ``lr``).
        pack: examples per discriminator input (PacGAN; 1: a plain discriminator).
        fc: width of a fully-connected hidden layer in the DCGAN networks (0: none): between z and
            the generator's first feature map, and between the discriminator's last feature map and
            its head, each with batch norm where the network has it. InfoGAN's MNIST networks
            (Chen et al., 2016, Table 1 of the appendix) use 1024. The MLP networks (vectors) have
            their layers in ``hidden`` and ignore it.
    """

    latent_dim: int = 32
    arch: Literal["auto", "mlp", "dcgan"] = "auto"
    hidden: tuple[int, ...] = (256, 256)
    g_channels: tuple[int, ...] = (128, 64)
    d_channels: tuple[int, ...] = (64, 128)
    loss: Literal["minimax", "nonsaturating", "lsgan", "wgan-gp", "hinge"] = "nonsaturating"
    d_steps: int = 1
    d_norm: Literal["auto", "batch", "none"] = "auto"
    spectral_norm: bool = False
    gp: float = 10.0
    r1: float = 0.0
    augment: tuple[str, ...] = ()
    unroll: int = 0
    lr_d: float | None = None
    lr_g: float | None = None
    pack: int = 1
    fc: int = 0

    def __post_init__(self):
        check_positive(self, "latent_dim", "d_steps", "lr_d", "lr_g", "pack")
        if self.gp < 0 or self.r1 < 0 or self.unroll < 0 or self.fc < 0:
            raise ConfigError("GANConfig: gp, r1, unroll and fc must be >= 0")
        try:
            check_policy(self.augment)
        except ValueError as e:
            raise ConfigError(f"GANConfig.augment: {e}") from None


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


class Discriminator(nn.Module):
    """D(x[, y]) -> (B,) scores, through features phi(x) (B, F) and a linear head.

    ``cond``: ``none``; ``concat`` (a one-hot label appended to the input: as extra input features
    for vectors, as constant extra channels for images); ``projection`` (``+ <embed(y), phi(x)>``).
    ``extra_out``: an auxiliary head on phi(x) (InfoGAN's Q network, AC-GAN's classifier) returned
    by :meth:`features`.
    ``cfg.pack`` = m > 1: scores (B // m,), one per pack of m consecutive examples (PacGAN).
    """

    def __init__(self, info, arch, cfg, *, classes=0, cond="none", extra_out=0):
        super().__init__()
        self.cond, self.classes, self.pack = cond, classes, cfg.pack
        if self.pack > 1 and (cond != "none" or extra_out):
            raise ConfigError("pack (PacGAN) scores packs of examples: not with labels or InfoGAN's code")
        extra_in = classes if cond == "concat" else 0
        sn = cfg.spectral_norm
        if arch == "dcgan":
            norm = cfg.d_norm
            if norm == "auto":
                norm = "none" if cfg.loss == "wgan-gp" or sn else "batch"
            c, h, w = info.shape
            shape = ((c + extra_in) * self.pack, h, w)
            net = ConvEncoder(shape, 1, cfg.d_channels, norm=norm, act="leaky_relu", spectral_norm=sn)
            self.body = nn.Sequential(net.convs, nn.Flatten())
            self.head = net.head
            if cfg.fc:  # conv features -> FC (norm) lReLU -> head, as InfoGAN's D
                hidden = [spectral_normed(nn.Linear(net.head.in_features, cfg.fc), sn)]
                hidden += [nn.BatchNorm1d(cfg.fc)] if norm == "batch" else []
                self.body = nn.Sequential(*self.body, *hidden, nn.LeakyReLU(0.2))
                self.head = spectral_normed(nn.Linear(cfg.fc, 1), sn)
        else:
            net = MLP(info.dim * self.pack + extra_in, 1, cfg.hidden, act="leaky_relu", spectral_norm=sn)
            self.body = nn.Sequential(nn.Flatten(), *list(net)[:-1])
            self.head = net[-1]
        feat = self.head.in_features
        self.embed = None
        if cond == "projection":  # zero at the start: N(0, 1) rows dotted with F features gave logits ~ sqrt(F)
            self.embed = nn.Embedding(classes, feat)
            nn.init.zeros_(self.embed.weight)
        self.q = MLP(feat, extra_out, (128,), act="leaky_relu") if extra_out else None

    def _input(self, x, y):
        if self.pack > 1:  # packs of m consecutive examples, side by side (a remainder is dropped)
            m = self.pack
            n = len(x) // m
            if n == 0:
                raise ConfigError(f"pack={m} needs batches of at least {m} examples, got {len(x)}")
            x = x[: n * m]
            return x.reshape(n, m * x.shape[1], *x.shape[2:]) if x.dim() == 4 else x.flatten(1).reshape(n, -1)
        if self.cond != "concat":
            return x
        onehot = F.one_hot(y, self.classes).to(x.dtype)
        if x.dim() == 4:
            return torch.cat([x, onehot[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
        return torch.cat([x.flatten(1), onehot], 1)

    def features(self, x, y=None):
        """(scores (B,), auxiliary head output or None)."""
        h = self.body(self._input(x, y))
        out = self.head(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(y) * h).sum(1)
        return out, (self.q(h) if self.q is not None else None)

    def forward(self, x, y=None):
        return self.features(x, y)[0]


@register("gan")
class GAN(GenerativeModel):
    """GAN with a choice of losses and stabilisers; MLP networks for vectors, DCGAN networks for images."""

    family = "gan"
    Config = GANConfig
    SampleConfig = GANSampleConfig
    density_summary = "none"
    loss_units = "discriminator + generator loss"
    test_options = {"latent_dim": 4, "hidden": (32, 32), "g_channels": (16, 8), "d_channels": (8, 16)}
    train_defaults = {"lr": 2e-4, "betas": (0.5, 0.999)}
    #: How the discriminator sees labels (``concat``, ``projection``; set by conditional subclasses).
    cond_mode = "none"
    #: InfoGAN: size of the structured code c fed to G, and of Q's output.
    code_dim = 0
    q_dim = 0

    @classmethod
    def train_defaults_for(cls, info, options=None):
        """DCGAN's Adam (lr 2e-4, beta1 0.5) for images; lr 1e-3 for the MLP networks on vectors,
        where 2e-4 left the GAN short of the 8 modes of 8gaussians at ``compare``'s 2,000 steps
        (docs/benchmarks.md, the mode-collapse study)."""
        d = dict(cls.train_defaults)
        arch = (options or {}).get("arch", cls.Config().arch)
        if arch == "mlp" or (arch == "auto" and not info.is_image):
            d["lr"] = 1e-3
        return d

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        self.arch = arch_for(info, cfg.arch, model=self.name, conv="dcgan")
        if cfg.augment and not info.is_image:
            raise DataError(f"{self.name}: augment (DiffAugment) transforms images; {info.name} has shape {info.shape}")
        self.classes = info.num_classes if self.conditional else 0
        g_in = cfg.latent_dim + self.classes + self.code_dim
        if self.arch == "dcgan" and cfg.fc:  # z -> FC BN ReLU -> FC BN ReLU -> convs, as InfoGAN's G
            fc = nn.Sequential(nn.Linear(g_in, cfg.fc), nn.BatchNorm1d(cfg.fc), nn.ReLU())
            conv = ConvDecoder(cfg.fc, info.shape, cfg.g_channels, norm="batch", act="relu", fc_norm=True)
            self.generator = nn.Sequential(fc, conv)
        elif self.arch == "dcgan":
            self.generator = ConvDecoder(g_in, info.shape, cfg.g_channels, norm="batch", act="relu")
        else:
            self.generator = MLP(g_in, info.dim, cfg.hidden, act="relu")
        self.discriminator = Discriminator(
            info, self.arch, cfg, classes=self.classes, cond=self.cond_mode, extra_out=self.q_dim
        )
        if cfg.unroll and self.q_dim:
            raise ConfigError(f"{self.name}: unroll simulates the adversarial loss only, not an auxiliary head's")
        # Data in [0, 1] (discrete data) get a sigmoid output; continuous data are unbounded.
        self.squash = info.is_discrete

    def why_no_density(self) -> str:
        return (
            "a GAN defines a sampler, not a density: D(x) is the discriminator's score that x is "
            "real, not log p(x); evaluate it with FID, KID or precision/recall"
        )

    # -- the networks -------------------------------------------------------------------------------
    def generate(
        self, z: torch.Tensor, y: torch.Tensor | None = None, code: torch.Tensor | None = None
    ) -> torch.Tensor:
        """G(z[, y][, c]) in data space (continuous values; :meth:`sample` snaps them to the lattice)."""
        parts = [z]
        if self.classes:
            parts.append(F.one_hot(y, self.classes).to(z.dtype))
        if code is not None:
            parts.append(code)
        out = self.generator(torch.cat(parts, 1) if len(parts) > 1 else z).view(len(z), *self.info.shape)
        return torch.sigmoid(out) if self.squash else out

    def critic(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """D's scores (B,) on ``x``, after DiffAugment when it is on (for training)."""
        return self.discriminator(self.augment(x), y)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.config.augment) if self.config.augment else x

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

    def _code(self, n, device, generator=None):
        """InfoGAN's structured code c (n, code_dim); None for other GANs."""
        return None

    def configure_optimizers(self, cfg):
        return {
            "disc": build_optimizer(self.discriminator.parameters(), cfg, lr=self.config.lr_d),
            "gen": build_optimizer(self.generator.parameters(), cfg, lr=self.config.lr_g),
        }

    # -- the losses ---------------------------------------------------------------------------------
    def discriminator_loss(self, x, fake, y=None, params=None, code=None):
        """(L_D with its penalties, D(x), D(fake)). ``params``: D's weights to use instead of its own
        (unrolling); ``code``: InfoGAN's code behind ``fake``, whose recovery by Q joins L_D."""
        cfg = self.config
        if params is None:
            crit = lambda t: self.critic(t, y)  # noqa: E731
        else:
            crit = lambda t: functional_call(self.discriminator, params, (self.augment(t), y))  # noqa: E731
        q_real = q = None
        if params is None and self.q_dim:  # the auxiliary head's outputs on both halves (InfoGAN, AC-GAN)
            d_real, q_real = self.discriminator.features(self.augment(x), y)
            d_fake, q = self.discriminator.features(self.augment(fake), y)
        else:
            d_real, d_fake = crit(x), crit(fake)
        loss = L.discriminator_loss(cfg.loss, d_real, d_fake)
        if cfg.loss == "wgan-gp" and cfg.gp:
            loss = loss + cfg.gp * L.gradient_penalty(crit, x, fake)
        if cfg.r1:
            loss = loss + 0.5 * cfg.r1 * L.r1_penalty(crit, x)
        if q is not None:
            loss = loss + self.aux_discriminator_loss(q_real, q, y, code)
        return loss, d_real, d_fake

    def aux_discriminator_loss(self, q_real, q_fake, y, code) -> torch.Tensor:
        """The auxiliary head's term in L_D, from its outputs on reals and on fakes (made from labels
        ``y`` and code ``code``): InfoGAN's and AC-GAN's hook (the plain GAN has no auxiliary head)."""
        raise NotImplementedError(f"{self.name} has no auxiliary head")

    def _unrolled_params(self, x, y, fake, ctx):
        """D's weights after ``unroll`` differentiable Adam steps on L_D against ``fake`` (which
        carries G's graph), starting from the optimiser's current moments (Metz et al., 2017, eq. 5-6)."""
        opt = ctx.optimizers["disc"]
        group = opt.param_groups[0]
        lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
        names = [n for n, _ in self.discriminator.named_parameters()]
        params = dict(self.discriminator.named_parameters())
        state = [opt.state.get(p, {}) for p in params.values()]
        m = [s["exp_avg"].clone() if "exp_avg" in s else torch.zeros_like(p) for s, p in zip(state, params.values())]
        v = [
            s["exp_avg_sq"].clone() if "exp_avg_sq" in s else torch.zeros_like(p)
            for s, p in zip(state, params.values())
        ]
        t0 = int(state[0]["step"]) if state and "step" in state[0] else 0
        cur = {n: p.detach().requires_grad_(True) for n, p in params.items()}  # leaves: start of the unroll
        for k in range(self.config.unroll):
            loss, _, _ = self.discriminator_loss(x, fake, y, params=cur)
            grads = torch.autograd.grad(loss, list(cur.values()), create_graph=True)
            t = t0 + k + 1
            new = {}
            for i, (n, g) in enumerate(zip(names, grads)):
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g * g
                step = lr * (m[i] / (1 - b1**t)) / ((v[i] / (1 - b2**t)).sqrt() + eps)
                new[n] = cur[n] - step
            cur = new
        return cur

    def train_step(self, x, y, ctx):
        cfg = self.config
        y = y if self.conditional else None
        for i in range(cfg.d_steps):
            if i > 0:
                x, y_next = ctx.next_batch()
                y = y_next if self.conditional else None
            code = self._code(len(x), x.device)
            with torch.no_grad():
                fake = self.generate(self._z(len(x), x.device), y, code)
            d_loss, d_real, d_fake = self.discriminator_loss(x, fake, y, code=code)
            ctx.step(d_loss, "disc")
        code = self._code(len(x), x.device)
        fake = self.generate(self._z(len(x), x.device), y, code)
        extra = {}
        if cfg.unroll:
            params = self._unrolled_params(x, y, fake, ctx)
            df = functional_call(self.discriminator, params, (self.augment(fake), y))
            g_loss = L.generator_loss(cfg.loss, df)
        else:
            self.discriminator.requires_grad_(False)
            try:
                df, q = self.discriminator.features(self.augment(fake), y)
                g_loss = L.generator_loss(cfg.loss, df)
                g_loss, extra = self.generator_extra_loss(g_loss, q, code, y)
            finally:
                self.discriminator.requires_grad_(True)
        ctx.step(g_loss, "gen")
        return {
            "loss": (d_loss + g_loss).detach(),
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            **self._scores(d_real, d_fake),
            **extra,
        }

    def generator_extra_loss(self, g_loss, q, code, y):
        """InfoGAN's and AC-GAN's hook: add terms that use the auxiliary head's output ``q`` on fakes
        made from ``code`` and labels ``y``; returns (loss, monitors)."""
        return g_loss, {}

    def _scores(self, d_real, d_fake) -> dict[str, torch.Tensor]:
        """Monitors: mean P(real) for the logistic losses, the mean raw score otherwise."""
        f = torch.sigmoid if self.config.loss in L.LOGISTIC else (lambda t: t)
        return {"d_real": f(d_real).mean().detach(), "d_fake": f(d_fake).mean().detach()}

    def loss(self, x, y=None):
        """Both losses on ``x`` without updating anything (for monitoring)."""
        y = y if self.conditional else None
        fake = self.generate(self._z(len(x), x.device), y, self._code(len(x), x.device))
        d_loss = L.discriminator_loss(self.config.loss, self.discriminator(x, y), self.discriminator(fake.detach(), y))
        g_loss = L.generator_loss(self.config.loss, self.discriminator(fake, y))
        return {"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss}

    @torch.no_grad()
    def evaluate(self, x, y=None):
        y = y if self.conditional else None
        fake = self.generate(self._z(len(x), x.device), y, self._code(len(x), x.device))
        return {k: v.item() for k, v in self._scores(self.discriminator(x, y), self.discriminator(fake, y)).items()}

    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        z = self._z(n, self.device, generator, options)
        return self.to_data_space(self.generate(z, y, self._code(n, self.device, generator)))


@dataclass(frozen=True)
class DCGANConfig(GANConfig):
    """:class:`GANConfig` with the DCGAN image networks chosen."""

    arch: Literal["auto", "mlp", "dcgan"] = "dcgan"


@register("dcgan")
class DCGAN(GAN):
    """The image configuration of ``gan``: DCGAN generator and discriminator (Radford et al., 2016)."""

    Config = DCGANConfig


@dataclass(frozen=True)
class UnrolledGANConfig(GANConfig):
    """:class:`GANConfig` with 10 unrolling steps, as in Metz et al.'s (2017) 2-D mixture figure."""

    unroll: int = 10


@register("unrolled-gan")
class UnrolledGAN(GAN):
    """GAN whose generator loss unrolls ``unroll`` discriminator updates (Metz et al., 2017), a remedy
    for mode collapse: the generator is penalised for moving to where the discriminator would follow."""

    Config = UnrolledGANConfig
