"""VQ-VAE: a discrete latent grid and a learned autoregressive prior over it (van den Oord, Vinyals
& Kavukcuoglu, 2017, "Neural Discrete Representation Learning", arXiv:1711.00937), with the EMA
codebook of its appendix and of VQ-VAE-2 (Razavi et al., 2019, arXiv:1906.00446).

An encoder maps x to a grid of vectors (images: a convolutional encoder to a small spatial grid,
e.g. 28x28 -> 7x7 or 8x8 -> 2x2 with two stride-2 layers; vectors: an MLP to ``latent_tokens``
vectors), each replaced by its nearest of K codebook vectors (:class:`deepgen.nn.quantize.VectorQuantizer`:
straight-through gradient, commitment loss, EMA codebook, dead-code restarts), and a decoder maps
the quantised grid to the parameters of p(x | z) through the same likelihood heads as the Gaussian
VAE (:func:`deepgen.nn.likelihood_head`: an exact probability mass on discrete data, so every
number is in nats). The model is trained in two stages, as in the paper:

1. ``stage=autoencoder``: encoder, quantiser and decoder minimise
   ``-log p(x | z_q(x)) + beta * ||z_e - sg(z_q)||^2`` (+ the codebook loss without EMA).
2. ``stage=prior``: the autoencoder is frozen (no gradients, kept in eval mode, so the EMA codebook
   stops moving) and a causal transformer (:class:`deepgen.nn.CausalTransformer`, ImageGPT-style)
   learns p(z) over the code grids of the data, flattened row-major (raster order); with
   ``class_conditional`` it learns p(z | y).

Density: the posterior is a point mass at z_q(x), whose entropy is 0, so for any prior p(z)

    log p(x) = log sum_z p(z) p(x | z) >= log p(x | z_q(x)) + log p(z_q(x))

a lower bound per example in nats. Stage ``prior`` uses the learned prior; stage ``autoencoder``
has none yet and reports the bound of the uniform prior, ``log p(x | z_q(x)) - T log K`` (T codes
per example), and its ``sample`` draws the code grid uniformly: a valid model of that density,
not a good sampler. Train the prior stage for real samples.

The two stages on the command line (the prior stage copies the trained ``autoencoder`` submodule,
so it must be given the same autoencoder options -- num_codes, code_dim, channels, ... -- as the
first stage; a mismatch is a one-line --init-from error)::

    deepgen train vqvae --data digits --steps 300 --out /tmp/x/ae
    deepgen train vqvae --data digits -o stage=prior --init-from /tmp/x/ae:autoencoder --steps 300 --out /tmp/x/prior
    deepgen sample /tmp/x/prior -n 64 --out /tmp/x/samples.png -s temperature=0.9
    deepgen eval /tmp/x/prior

A prior stage without ``--init-from`` is refused when training starts (a prior over the codes of an
untrained autoencoder learns nothing useful).

>>> from deepgen.data import DataInfo
>>> info = DataInfo("digits", (1, 8, 8), 17)
>>> m = VQVAE(info, VQVAEConfig(num_codes=16, code_dim=4, channels=(8, 16), prior_d_model=16, prior_layers=1))
>>> m.grid, m.loss(torch.rand(4, 1, 8, 8).mul(16).round().div(16))["loss"].shape
((2, 2), torch.Size([]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from deepgen.config import check_positive
from deepgen.errors import ConfigError, DataError
from deepgen.models.base import DensityKind, GenerativeModel, LogLikelihood, build_optimizer
from deepgen.nn import MLP, CausalTransformer, arch_for, downsample_sizes, likelihood_head
from deepgen.nn.quantize import Quantized, VectorQuantizer
from deepgen.registry import register


@dataclass(frozen=True)
class VQVAEConfig:
    """Options of :class:`VQVAE`.

    stage: ``autoencoder`` (train encoder, codebook and decoder) or ``prior`` (freeze them and train
        the transformer prior over the codes; start it with --init-from RUN:autoencoder).
    num_codes: K, codebook size.
    code_dim: size of each code vector.
    arch: ``conv`` (images: a grid of codes), ``mlp`` (``latent_tokens`` codes) or ``auto``.
    channels: conv channels after each stride-2 downsampling (their number sets the grid: 28x28 ->
        7x7 and 8x8 -> 2x2 with two); reversed for the decoder.
    hidden: MLP hidden sizes (encoder; reversed for the decoder).
    latent_tokens: number of codes per example with the MLP architecture.
    decoder: likelihood p(x|z): auto, bernoulli, categorical, logistic, gaussian.
    decoder_std: Gaussian decoder's standard deviation: ``shared`` (learned per dimension) or
        ``per-example`` (output by the decoder).
    commitment: beta, weight of the commitment loss ||z_e - sg(z_q)||^2 (0.25 in the paper).
    ema: update the codebook by exponential moving averages (else by the codebook loss).
    decay: EMA decay of the codebook statistics.
    restart_after: restart a code unused for this many training steps at an encoder output of the
        batch (0: never).
    prior_d_model: width of the prior transformer.
    prior_layers: blocks of the prior transformer.
    prior_heads: attention heads of the prior transformer (must divide prior_d_model).
    prior_dropout: dropout in the prior transformer while training.
    prior_lr: learning rate of the prior stage (none: the run's --lr).
    class_conditional: the prior models p(z | y) (stage prior, labelled data); samples take labels.
    """

    stage: Literal["autoencoder", "prior"] = "autoencoder"
    num_codes: int = 64
    code_dim: int = 16
    arch: Literal["auto", "mlp", "conv"] = "auto"
    channels: tuple[int, ...] = (32, 64)
    hidden: tuple[int, ...] = (256, 256)
    latent_tokens: int = 8
    decoder: Literal["auto", "bernoulli", "categorical", "logistic", "gaussian"] = "auto"
    decoder_std: Literal["shared", "per-example"] = "shared"
    commitment: float = 0.25
    ema: bool = True
    decay: float = 0.99
    restart_after: int = 100
    prior_d_model: int = 64
    prior_layers: int = 2
    prior_heads: int = 4
    prior_dropout: float = 0.0
    prior_lr: float | None = None
    class_conditional: bool = False

    def __post_init__(self):
        check_positive(self, "num_codes", "code_dim", "latent_tokens", "prior_d_model", "prior_layers")
        check_positive(self, "prior_heads", "prior_lr")
        if self.commitment < 0:
            raise ConfigError(f"vqvae: commitment must be >= 0, got {self.commitment}")
        if not 0 < self.decay < 1:
            raise ConfigError(f"vqvae: decay must lie in (0, 1), got {self.decay}")
        if self.restart_after < 0:
            raise ConfigError(f"vqvae: restart_after must be >= 0 (0: never), got {self.restart_after}")
        if self.prior_d_model % self.prior_heads:
            raise ConfigError(f"vqvae: prior_heads {self.prior_heads} must divide prior_d_model {self.prior_d_model}")
        if not 0 <= self.prior_dropout < 1:
            raise ConfigError(f"vqvae: prior_dropout must lie in [0, 1), got {self.prior_dropout}")
        if not self.channels:
            raise ConfigError("vqvae: channels needs at least one entry (one downsampling)")
        if self.class_conditional and self.stage != "prior":
            raise ConfigError("vqvae: class_conditional applies to the prior: use it with -o stage=prior")


@dataclass(frozen=True)
class VQVAESampleConfig:
    """Sampling options of :class:`VQVAE`.

    temperature: the prior's logits are divided by it (below 1 favours likely codes; 0 takes the most
        likely code, greedy decoding); stage autoencoder draws codes uniformly and ignores it.
    mean: return the decoder means E[x|z] (in [0, 1], not on the lattice, for discrete data)
        instead of draws x ~ p(x|z).
    """

    temperature: float = 1.0
    mean: bool = False

    def __post_init__(self):
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise ConfigError(f"temperature must be a finite number >= 0, got {self.temperature}")


class GridEncoder(nn.Sequential):
    """Image (B, C, H, W) -> grid of vectors (B, out_dim, h, w): stride-2 3x3 convolutions (``ceil``
    halving, as :class:`deepgen.nn.ConvEncoder`), then a 3x3 and a 1x1 convolution, no flattening."""

    def __init__(self, in_channels: int, out_dim: int, channels: Sequence[int]):
        layers: list[nn.Module] = []
        c = in_channels
        for ch in channels:
            layers += [nn.Conv2d(c, ch, 3, stride=2, padding=1), nn.ReLU()]
            c = ch
        layers += [nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, out_dim, 1)]
        super().__init__(*layers)


class GridDecoder(nn.Sequential):
    """Grid (B, in_dim, h, w) -> image parameters (B, out_channels, H, W), retracing
    :class:`GridEncoder`'s sizes with nearest-neighbour upsampling and 3x3 convolutions.

    ``channels``: channels at the lowest resolution first (the encoder's, reversed).
    """

    def __init__(self, in_dim: int, out_shape: Sequence[int], channels: Sequence[int]):
        c_out, h, w = out_shape
        hs = downsample_sizes(h, len(channels))[::-1]
        ws = downsample_sizes(w, len(channels))[::-1]
        layers: list[nn.Module] = [nn.Conv2d(in_dim, channels[0], 3, padding=1), nn.ReLU()]
        c = channels[0]
        for i in range(len(channels)):
            nxt = channels[i + 1] if i + 1 < len(channels) else channels[-1]
            layers += [
                nn.Upsample(size=(hs[i + 1], ws[i + 1]), mode="nearest"),
                nn.Conv2d(c, nxt, 3, padding=1),
                nn.ReLU(),
            ]
            c = nxt
        layers.append(nn.Conv2d(c, c_out, 3, padding=1))
        super().__init__(*layers)


class VQAutoencoder(nn.Module):
    """The first stage: ``encoder`` -> ``quantizer`` -> ``decoder`` -> ``likelihood`` head.

    ``grid``: the shape of one example's code grid, (h, w) for images or (latent_tokens,).
    """

    def __init__(self, info, cfg: VQVAEConfig, arch: str, model: str):
        super().__init__()
        self.likelihood = likelihood_head(info, cfg.decoder, model=model, std=cfg.decoder_std, min_log_std=-6.0)
        p = self.likelihood.params_per_dim
        self.arch, self.code_dim = arch, cfg.code_dim
        if arch == "conv":
            c, h, w = info.shape
            self.grid = (downsample_sizes(h, len(cfg.channels))[-1], downsample_sizes(w, len(cfg.channels))[-1])
            self.encoder = GridEncoder(c, cfg.code_dim, cfg.channels)
            self.decoder = GridDecoder(cfg.code_dim, (c * p, h, w), tuple(reversed(cfg.channels)))
        else:
            self.grid = (cfg.latent_tokens,)
            self.encoder = MLP(info.dim, cfg.latent_tokens * cfg.code_dim, cfg.hidden)
            self.decoder = MLP(cfg.latent_tokens * cfg.code_dim, info.dim * p, tuple(reversed(cfg.hidden)))
        self.quantizer = VectorQuantizer(
            cfg.num_codes, cfg.code_dim, cfg.commitment, cfg.ema, cfg.decay, restart_after=cfg.restart_after
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z_e: (B, *grid, code_dim), code vectors last."""
        h = self.encoder(x)
        if self.arch == "conv":
            return h.permute(0, 2, 3, 1)
        return h.view(len(x), *self.grid, self.code_dim)

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """(B, *grid, code_dim) quantised vectors -> the likelihood head's parameters."""
        if self.arch == "conv":
            return self.decoder(z_q.permute(0, 3, 1, 2))
        return self.decoder(z_q.flatten(1))

    def forward(self, x: torch.Tensor, update: bool | None = None) -> tuple[Quantized, torch.Tensor]:
        """Quantise x and decode: ``(quantised, decoder parameters)``; ``update`` as the quantiser's."""
        q = self.quantizer(self.encode(x), update)
        return q, self.decode(q.z_q)


@register("vqvae")
class VQVAE(GenerativeModel):
    """VQ-VAE (van den Oord et al., 2017): a quantised autoencoder and a transformer prior over its codes.

    Submodules: ``autoencoder`` (:class:`VQAutoencoder`: encoder, quantizer, decoder, likelihood)
    and ``prior`` (:class:`deepgen.nn.CausalTransformer` over the T = prod(grid) codes, raster
    order). ``stage`` chooses which of the two trains; the other has ``requires_grad`` False and is
    left out of the optimiser. Shapes: ``codes(x)`` (B, T) int64; ``elbo(x)`` (B,) nats;
    ``sample(n)`` (n, *info.shape).
    """

    family = "vae"
    Config = VQVAEConfig
    SampleConfig = VQVAESampleConfig
    condition_option = "class_conditional"
    density_summary = "lower bound: log p(x|z_q(x)) + log p(z_q(x)) (learned prior; uniform before stage prior)"
    training_stages = (({"stage": "autoencoder"}, None), ({"stage": "prior"}, "autoencoder"))
    test_options = {
        "num_codes": 8,
        "code_dim": 4,
        "channels": (8, 16),
        "hidden": (32, 32),
        "latent_tokens": 2,
        "prior_d_model": 16,
        "prior_layers": 1,
        "prior_heads": 2,
    }

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        arch = arch_for(info, cfg.arch, model=self.name)
        self.autoencoder = VQAutoencoder(info, cfg, arch, self.name)
        if cfg.class_conditional:
            if not info.num_classes:
                raise DataError(f"{self.name}: class_conditional needs labelled data; {info.name} has no labels")
            self.conditional = True  # per instance, as ar-transformer: one class, one set of options
        self.prior = self.build_prior()
        frozen = self.autoencoder if cfg.stage == "prior" else self.prior
        frozen.requires_grad_(False)

    #: The prior over the T codes; a subclass may swap in another with the same constructor
    #: arguments, ``log_prob(codes, y)`` and ``generate(n, y=, temperature=, generator=)``.
    prior_class: type[nn.Module] = CausalTransformer

    def build_prior(self) -> nn.Module:
        """``prior_class`` sized by the ``prior_*`` options."""
        cfg = self.config
        return self.prior_class(
            cfg.num_codes,
            self.num_tokens,
            cfg.prior_d_model,
            cfg.prior_layers,
            cfg.prior_heads,
            num_classes=self.info.num_classes if cfg.class_conditional else None,
            dropout=cfg.prior_dropout,
        )

    @property
    def grid(self) -> tuple[int, ...]:
        """Shape of one example's code grid: (h, w) for images, (latent_tokens,) for vectors."""
        return self.autoencoder.grid

    @property
    def num_tokens(self) -> int:
        """T, the number of codes per example."""
        return math.prod(self.grid)

    @property
    def density_kind(self) -> DensityKind:
        return DensityKind.BOUND

    def why_no_density(self) -> str:
        return "p(x) sums p(x|z) p(z) over all K^T code grids; it reports the point-mass lower bound"

    def train(self, mode: bool = True):
        """Training mode for the stage being trained; the frozen autoencoder of stage prior stays in
        eval mode (its EMA codebook and restarts must not move)."""
        super().train(mode)
        if self.config.stage == "prior":
            self.autoencoder.train(False)
        return self

    # -- codes -------------------------------------------------------------------------------------
    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) int64 codes of x, the grid flattened row-major; never updates the codebook."""
        return self.autoencoder.quantizer(self.autoencoder.encode(x), update=False).codes.flatten(1)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, T) codes -> the likelihood head's parameters for p(x | z)."""
        z_q = self.autoencoder.quantizer.lookup(codes.view(len(codes), *self.grid))
        return self.autoencoder.decode(z_q)

    def prior_log_prob(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) log p(z) in nats: the transformer's in stage prior, the uniform -T log K before."""
        if self.config.stage == "prior":
            return self.prior.log_prob(codes, y)
        return codes.new_full((len(codes),), -self.num_tokens * math.log(self.config.num_codes), dtype=torch.float32)

    # -- objectives --------------------------------------------------------------------------------
    def initialize(self, x: torch.Tensor) -> None:
        """Stage autoencoder: the codebook starts at encoder outputs of the first batch. Stage prior:
        refuse an autoencoder that never trained (start the stage with --init-from RUN:autoencoder)."""
        if self.config.stage == "autoencoder":
            with torch.no_grad():
                self.autoencoder.quantizer.init_codebook(self.autoencoder.encode(x))
        elif int(self.autoencoder.quantizer.calls) == 0:
            raise ConfigError(
                f"{self.name}: stage=prior trains a prior over the codes of a trained autoencoder; start it from "
                f"one: deepgen train {self.name} -o stage=prior --init-from RUN:autoencoder (RUN: a stage "
                "autoencoder run with the same autoencoder options)"
            )

    def loss(self, x, y=None):
        if self.config.stage == "prior":
            codes = self.codes(x)
            lp = self.prior.log_prob(codes, y if self.conditional else None)
            return {"loss": -lp.mean() / self.info.dim, "prior_nll": -lp.mean().detach()}
        q, params = self.autoencoder(x)
        rec = self.autoencoder.likelihood.log_prob(params, x)
        loss = (-rec + q.commitment + q.codebook).mean() / self.info.dim
        out = {
            "loss": loss,
            "rec_nll": -rec.mean().detach(),
            "elbo": (rec.detach() + self.prior_log_prob(q.codes.flatten(1)).to(rec.dtype)).mean(),
            "commitment": q.commitment.mean().detach(),
            "usage": q.usage,
            "perplexity": q.perplexity,
        }
        if not self.config.ema:
            out["codebook"] = q.codebook.mean().detach()
        return out

    def configure_optimizers(self, cfg):
        """One Adam over the parameters of the stage being trained (the other part is frozen)."""
        trainable = [p for p in self.parameters() if p.requires_grad]
        lr = self.config.prior_lr if self.config.stage == "prior" else None
        return {"main": build_optimizer(trainable, cfg, lr=lr)}

    # -- densities ---------------------------------------------------------------------------------
    def elbo(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) log p(x | z_q(x)) + log p(z_q(x)) in nats, a lower bound on log p(x) (or log p(x | y))."""
        self.check_input(x)
        q, params = self.autoencoder(x, update=False)
        rec = self.autoencoder.likelihood.log_prob(params, x)
        return rec + self.prior_log_prob(q.codes.flatten(1), y).to(rec.dtype)

    def log_likelihood(self, x, *, y=None, k=None, method=None) -> LogLikelihood:
        self.check_method(method)
        y = self.check_labels(y, len(x), draw=False)
        prior = "learned prior" if self.config.stage == "prior" else "uniform prior over codes"
        return LogLikelihood(self.elbo(x, y), DensityKind.BOUND, f"point-mass bound log p(x|z_q) + log p(z_q), {prior}")

    # -- sampling ----------------------------------------------------------------------------------
    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        """Codes from the prior (uniform in stage autoencoder), then x ~ p(x | z) or its mean."""
        if self.config.stage == "prior":
            codes = self.prior_codes(n, options, generator=generator, y=y)
        else:
            codes = torch.randint(self.config.num_codes, (n, self.num_tokens), generator=generator, device=self.device)
        params = self.decode_codes(codes)
        head = self.autoencoder.likelihood
        return head.mean(params) if options.mean else head.sample(params, generator)

    def prior_codes(self, n, options, *, generator, y) -> torch.Tensor:
        """(n, T) codes drawn from the learned prior with the sampling ``options``."""
        return self.prior.generate(n, y=y, temperature=options.temperature, generator=generator)

    def extra_repr(self) -> str:
        c = self.config
        cond = ", class-conditional" if c.class_conditional else ""
        return f"{super().extra_repr()}, stage={c.stage}, K={c.num_codes}, grid={self.grid}{cond}"
