"""Hierarchical VAE with top-down inference, in the style of VD-VAE (Child, 2021, arXiv:2011.10650),
after the Ladder VAE (Sønderby et al., 2016, arXiv:1602.02282) and NVAE (Vahdat & Kautz, 2020,
arXiv:2007.03898).

Generative model: L latent layers z_0 .. z_{L-1}, sampled top-down,

    p(x, z) = p(x | z) prod_l p(z_l | z_<l),    q(z | x) = prod_l q(z_l | x, z_<l).

A *bottom-up* encoder turns x into activations a_s at each resolution s (images) or one feature
vector (vectors). The *top-down* decoder is a stack of residual cells that carry a state h; cell l
holds latent layer z_l (VD-VAE's decoder block):

    prior      p(z_l | z_<l)    = N(m_p, s_p^2) and a residual update, both from h
    posterior  q(z_l | x, z_<l) = N(m_q, s_q^2) from [h, a_s]   (the matching bottom-up activation)
    merge      h <- res(h + update + proj(z_l))

Images: conv cells at a few resolutions, coarsest first (7x7 -> 14x14 -> 28x28 for MNIST,
2x2 -> 4x4 -> 8x8 for 8x8 digits; ``scales`` latent layers at each, ``z_dim`` latent channels per
layer); the state is upsampled (nearest) between resolutions. Vectors (2-D toys): MLP cells, one
scale with ``sum(scales)`` latent layers. Standard deviations are ``min_std + softplus(.)``, with
the prior's last layer zero-initialised so every prior starts at N(0, I). The output is one of the
shared likelihood heads (:mod:`deepgen.nn.heads`): an exact probability mass on discrete data.

Training minimises -ELBO per dimension,

    -ELBO(x) = -log p(x | z) + sum_l KL_l,   KL_l = KL(q(z_l | x, z_<l) || p(z_l | z_<l))

with each KL in closed form given the sampled parents z_<l (as VD-VAE); the loss dict logs every
layer's ``kl_<l>`` (they sum to ``kl``). Updates whose gradient norm exceeds ``skip_threshold`` (or
is not finite) are skipped and counted (VD-VAE's gradient-norm skipping). Evaluation reports the
ELBO (a lower bound) or the importance-sampled estimate with
``log w = log p(x|z) + sum_l [log p(z_l|z_<l) - log q(z_l|x,z_<l)]`` (Burda et al., 2016).

Sampling (:class:`HVAESampleConfig`): ancestral from the top-down prior; ``temperature`` scales
every prior standard deviation (VD-VAE's low-temperature samples; 0 takes the prior means), and
``mean=True`` returns E[x | z].

>>> import torch
>>> from deepgen.data import DataInfo
>>> model = HVAE(DataInfo("digits", (1, 8, 8), 17), HVAEConfig(scales=(1, 1, 1), width=8, z_dim=2))
>>> out = model.loss(torch.rand(4, 1, 8, 8).round())
>>> sorted(k for k in out if k.startswith("kl"))
['kl', 'kl_0', 'kl_1', 'kl_2']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.config import check_positive
from deepgen.errors import ConfigError
from deepgen.models.density import LatentVariableModel
from deepgen.models.vae.vae import IS_BLOCK_BYTES as _VAE_BLOCK_BYTES
from deepgen.models.vae.warmup import KLWarmup
from deepgen.nn import arch_for, downsample_sizes, likelihood_head
from deepgen.registry import register

#: Memory budget (bytes, estimated) for one block of top-down passes in importance sampling.
IS_BLOCK_BYTES = _VAE_BLOCK_BYTES

_LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class HVAEConfig:
    """Options of :class:`HVAE`.

    Attributes:
        scales: latent layers at each resolution, coarsest first; images use ``len(scales)``
            resolutions (``len(scales) - 1`` halvings of the image size), vectors one MLP stack of
            ``sum(scales)`` layers.
        width: channels (conv) or features (MLP) of the bottom-up activations and top-down state.
        z_dim: latent channels (conv) or dimensions (MLP) of each latent layer.
        enc_blocks: residual blocks of the bottom-up encoder at each resolution.
        arch: ``mlp``, ``conv`` (images only) or ``auto`` (conv for images).
        decoder: likelihood p(x|z): auto, bernoulli, categorical, logistic, logistic-mixture, gaussian.
        decoder_std: the Gaussian likelihood's standard deviation: ``shared`` (one learned value per
            dimension) or ``per-example`` (output with the mean, floored at exp(-6)), as in the VAE.
        min_std: floor of every prior and posterior standard deviation (``min_std + softplus``).
        skip_threshold: skip an update whose gradient norm is above this (or not finite) and count
            it (VD-VAE); none disables skipping. The loss is per dimension, so norms are O(1-100).
        kl_warmup: training steps over which the weight of every layer's KL ramps linearly from 0 to
            1 (the Ladder VAE's warm-up, Sønderby et al. 2016, against inactive latent layers);
            0 = off. The logged ``elbo`` is always the true ELBO.
    """

    scales: tuple[int, ...] = (2, 2, 2)
    width: int = 64
    z_dim: int = 8
    enc_blocks: int = 1
    arch: Literal["auto", "mlp", "conv"] = "auto"
    decoder: Literal["auto", "bernoulli", "categorical", "logistic", "logistic-mixture", "gaussian"] = "auto"
    decoder_std: Literal["shared", "per-example"] = "shared"
    min_std: float = 1e-3
    skip_threshold: float | None = 400.0
    kl_warmup: int = 0

    def __post_init__(self):
        check_positive(self, "width", "z_dim", "enc_blocks", "min_std", "skip_threshold")
        if self.kl_warmup < 0:
            raise ConfigError(f"HVAEConfig.kl_warmup must be >= 0 steps, got {self.kl_warmup}")
        if not self.scales or any(int(n) != n or n < 1 for n in self.scales):
            raise ConfigError(f"HVAEConfig.scales must be one or more positive integers, got {self.scales}")
        if self.min_std >= 1:
            raise ConfigError(f"HVAEConfig.min_std must be below 1, got {self.min_std}")


@dataclass(frozen=True)
class HVAESampleConfig:
    """Sampling options of :class:`HVAE`.

    Attributes:
        mean: return the decoder means E[x|z] instead of draws x ~ p(x|z).
        temperature: scale of every prior standard deviation in the top-down pass (1 samples the
            model; 0 takes each layer's prior mean, VD-VAE's low-temperature sampling).
    """

    mean: bool = False
    temperature: float = 1.0

    def __post_init__(self):
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ConfigError(f"HVAESampleConfig.temperature must be a finite number >= 0, got {self.temperature}")


def gaussian_kl(qm, qs, pm, ps) -> torch.Tensor:
    """KL(N(qm, qs^2) || N(pm, ps^2)) summed over all non-batch dimensions, (B,)."""
    kl = torch.log(ps) - torch.log(qs) + 0.5 * (qs.pow(2) + (qm - pm).pow(2)) / ps.pow(2) - 0.5
    return kl.flatten(1).sum(1)


def gaussian_log_prob(z, m, s) -> torch.Tensor:
    """log N(z | m, s^2) summed over all non-batch dimensions, (B,)."""
    return (-0.5 * ((z - m) / s).pow(2) - torch.log(s) - 0.5 * _LOG_2PI).flatten(1).sum(1)


class Block(nn.Module):
    """VD-VAE's bottleneck block: GELU then 1x1 (cin -> mid), 3x3, 3x3, 1x1 (mid -> cout) convolutions
    (``conv``) or three linear layers, with a residual connection when ``residual``.

    ``last_scale`` multiplies the last layer's initial weights (VD-VAE scales residual branches by
    sqrt(1 / number of layers)); ``zero_last`` starts it at zero.
    """

    def __init__(self, cin, mid, cout, conv, *, residual=False, zero_last=False, last_scale=1.0):
        super().__init__()
        if conv:
            layers = [nn.Conv2d(cin, mid, 1), nn.Conv2d(mid, mid, 3, padding=1)]
            layers += [nn.Conv2d(mid, mid, 3, padding=1), nn.Conv2d(mid, cout, 1)]
        else:
            layers = [nn.Linear(cin, mid), nn.Linear(mid, mid), nn.Linear(mid, cout)]
        self.layers = nn.ModuleList(layers)
        self.residual = residual
        with torch.no_grad():
            layers[-1].weight.mul_(0.0 if zero_last else last_scale)
            if zero_last:
                layers[-1].bias.zero_()

    def forward(self, x):
        out = x
        for layer in self.layers:
            out = layer(F.gelu(out))
        return x + out if self.residual else out


class TopDownCell(nn.Module):
    """One latent layer z_l of the top-down decoder (VD-VAE's decoder block), on state h."""

    def __init__(self, width, mid, z_dim, conv, n_layers, min_std):
        super().__init__()
        scale = math.sqrt(1.0 / n_layers)
        self.z_dim, self.min_std = z_dim, min_std
        self.shift = math.log(math.expm1(1.0 - min_std))  # softplus(0 + shift) + min_std = 1
        self.posterior_net = Block(2 * width, mid, 2 * z_dim, conv)
        self.prior_net = Block(width, mid, 2 * z_dim + width, conv, zero_last=True)
        self.z_proj = nn.Conv2d(z_dim, width, 1) if conv else nn.Linear(z_dim, width)
        with torch.no_grad():
            self.z_proj.weight.mul_(scale)
        self.res = Block(width, mid, width, conv, residual=True, last_scale=scale)

    def _std(self, raw):
        return self.min_std + F.softplus(raw + self.shift)

    def prior(self, h):
        """p(z_l | z_<l): mean, std, and the state with the prior's residual update."""
        out = self.prior_net(h)
        m, raw, update = out.split([self.z_dim, self.z_dim, out.shape[1] - 2 * self.z_dim], 1)
        return m, self._std(raw), h + update

    def posterior(self, h, a):
        """q(z_l | x, z_<l): mean and std from the state (before the prior's update) and activation a."""
        m, raw = self.posterior_net(torch.cat([h, a], 1)).chunk(2, 1)
        return m, self._std(raw)

    def merge(self, h, z):
        return self.res(h + self.z_proj(z))


@register("hvae")
class HVAE(KLWarmup, LatentVariableModel):
    """Hierarchical VAE (VD-VAE style): a bottom-up encoder and a top-down stack of latent layers.

    Public pieces: :meth:`posterior_means` (every layer's, as a list), :meth:`encode` /
    :meth:`decode` (the same flattened into one latent vector, for interpolation and traversal),
    :meth:`decode_mean` (E[x|z] from some or all layers), :meth:`layers` (per-layer prior/posterior parameters, KLs and
    log-ratios of one posterior pass), and the ``skipped_updates`` buffer (updates skipped by
    gradient-norm skipping, kept in checkpoints).
    """

    family = "vae"
    Config = HVAEConfig
    SampleConfig = HVAESampleConfig
    test_options = {"scales": (1, 1, 1), "width": 8, "z_dim": 2}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        self.arch = arch_for(info, cfg.arch, model=self.name)
        conv = self.arch == "conv"
        self.likelihood = likelihood_head(info, cfg.decoder, model=self.name, std=cfg.decoder_std, min_log_std=-6.0)
        w, mid = cfg.width, max(4, cfg.width // 4)
        n_layers = sum(cfg.scales)
        if conv:
            self.sizes = [
                (h, v)
                for h, v in zip(
                    downsample_sizes(info.shape[1], len(cfg.scales) - 1)[::-1],
                    downsample_sizes(info.shape[2], len(cfg.scales) - 1)[::-1],
                )
            ]  # coarsest first
            self.stem = nn.Conv2d(info.shape[0], w, 3, padding=1)
            self.downs = nn.ModuleList(nn.Conv2d(w, w, 3, stride=2, padding=1) for _ in cfg.scales[1:])
            self.h0 = nn.Parameter(torch.zeros(w, *self.sizes[0]))
            self.out = nn.Conv2d(w, info.shape[0] * self.likelihood.params_per_dim, 1)
            scales = list(cfg.scales)
        else:
            self.sizes = [None]
            self.stem = nn.Linear(info.dim, w)
            self.downs = nn.ModuleList()
            self.h0 = nn.Parameter(torch.zeros(w))
            self.out = nn.Linear(w, info.dim * self.likelihood.params_per_dim)
            scales = [n_layers]
        # encoder blocks by resolution, coarsest first (matching the top-down order)
        self.enc = nn.ModuleList(
            nn.Sequential(*(Block(w, mid, w, conv, residual=True) for _ in range(cfg.enc_blocks))) for _ in scales
        )
        self.cells = nn.ModuleList(
            nn.ModuleList(TopDownCell(w, mid, cfg.z_dim, conv, n_layers, cfg.min_std) for _ in range(n)) for n in scales
        )
        self.register_buffer("skipped_updates", torch.zeros((), dtype=torch.long))
        self._setup_kl_warmup(cfg.kl_warmup)
        self._is_block: int | None = None

    @property
    def num_layers(self) -> int:
        """L, the number of latent layers."""
        return sum(len(c) for c in self.cells)

    # -- networks ----------------------------------------------------------------------------------
    def bottom_up(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations of x at each resolution, coarsest first: (B, width, h_s, w_s) or [(B, width)]."""
        h = self.stem(x if self.arch == "conv" else x.flatten(1))
        acts = []
        for s in reversed(range(len(self.enc))):
            h = self.enc[s](h)
            acts.append(h)
            if s > 0:
                h = self.downs[s - 1](F.gelu(h))
        return acts[::-1]

    def _top_down(self, n, acts=None, latents=None, temperature=1.0, generator=None):
        """One top-down pass for n rows: ``(params, layers)``.

        With ``acts`` (bottom-up activations) z_l ~ q(z_l | x, z_<l) and each entry of ``layers``
        holds the prior and posterior parameters, z, the analytic ``kl`` (B,) and
        ``log_ratio`` = log p(z_l|z_<l) - log q(z_l|x,z_<l) (B,). Without, z_l is ``latents[l]``
        where given, else prior mean + temperature * std * eps (eps from ``generator``).
        """
        h = self.h0.expand(n, *self.h0.shape)
        layers, i = [], 0
        for s, cells in enumerate(self.cells):
            if s > 0:
                h = F.interpolate(h, size=self.sizes[s], mode="nearest")
            for cell in cells:
                pm, ps, h_next = cell.prior(h)
                if acts is not None:
                    qm, qs = cell.posterior(h, acts[s])
                    eps = torch.randn_like(qm)
                    z = qm + qs * eps
                    log_q = (-0.5 * eps.pow(2) - torch.log(qs) - 0.5 * _LOG_2PI).flatten(1).sum(1)
                    kl, log_ratio = gaussian_kl(qm, qs, pm, ps), gaussian_log_prob(z, pm, ps) - log_q
                    layers.append({"pm": pm, "ps": ps, "qm": qm, "qs": qs, "z": z, "kl": kl, "log_ratio": log_ratio})
                elif latents is not None and i < len(latents):
                    z = latents[i].to(pm.dtype)
                elif temperature == 0:
                    z = pm
                else:
                    eps = torch.randn(pm.shape, generator=generator, device=pm.device, dtype=pm.dtype)
                    z = pm + temperature * ps * eps
                h = cell.merge(h_next, z)
                i += 1
        return self.out(F.gelu(h)), layers

    def layers(self, x: torch.Tensor) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """One pass z ~ q(z|x): likelihood parameters and, per layer (top first), a dict with ``pm``,
        ``ps``, ``qm``, ``qs`` (prior/posterior mean and std), ``z``, ``kl`` (B,), ``log_ratio`` (B,)."""
        return self._top_down(len(x), acts=self.bottom_up(x))

    @torch.no_grad()
    def posterior_means(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Posterior means of every layer, top first: z_l = mean of q(z_l | x, z_<l) with the parents
        z_<l set to their own means; (B, z_dim, h_l, w_l) (conv) or (B, z_dim) (MLP) each."""
        acts = self.bottom_up(x)
        h = self.h0.expand(len(x), *self.h0.shape)
        means = []
        for s, cells in enumerate(self.cells):
            if s > 0:
                h = F.interpolate(h, size=self.sizes[s], mode="nearest")
            for cell in cells:
                qm, _ = cell.posterior(h, acts[s])
                h = cell.merge(cell.prior(h)[2], qm)
                means.append(qm)
        return means

    def decode_mean(self, latents: list[torch.Tensor], temperature: float = 0.0, generator=None) -> torch.Tensor:
        """E[x | z], (B, *shape), from the first ``len(latents)`` layers' latents (e.g. :meth:`encode`'s);
        the remaining layers come from the prior at ``temperature`` (0: their means)."""
        params, _ = self._top_down(len(latents[0]), latents=latents, temperature=temperature, generator=generator)
        return self.likelihood.mean(params)

    # -- latent space ------------------------------------------------------------------------------
    latent_description = "posterior means of every layer, top first, flattened"

    def _layer_shapes(self) -> list[tuple[int, ...]]:
        p = next(self.parameters())
        probe = torch.zeros(1, *self.info.shape, device=p.device, dtype=p.dtype)
        return [tuple(m.shape[1:]) for m in self.posterior_means(probe)]

    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """All layers' posterior means (:meth:`posterior_means`) flattened and concatenated, top layer
        first: (B, total latent size). Traversing a coordinate moves one unit of one layer."""
        return torch.cat([m.flatten(1) for m in self.posterior_means(x)], 1)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The inverse layout of :meth:`encode`: split z into the layers' latents, then
        :meth:`decode_mean` with every layer given."""
        shapes = self._layer_shapes()
        sizes = [math.prod(s) for s in shapes]
        if z.dim() != 2 or z.shape[1] != sum(sizes):
            raise ConfigError(f"{self.name}: decode takes (B, {sum(sizes)}) latents, got {tuple(z.shape)}")
        return self.decode_mean([part.reshape(len(z), *s) for part, s in zip(z.split(sizes, 1), shapes)])

    # -- objectives --------------------------------------------------------------------------------
    def loss(self, x, y=None):
        params, layers = self.layers(x)
        rec = self.likelihood.log_prob(params, x)
        kls = [layer["kl"] for layer in layers]
        kl = torch.stack(kls, 1).sum(1)
        elbo = rec - kl
        weight = self.warmup_factor()
        self.count_kl_step()
        loss = -(rec.mean() - weight * kl.mean()) / self.info.dim
        out = {"loss": loss, "elbo": elbo.mean().detach(), "rec": rec.mean().detach()}
        out["kl"] = kl.mean().detach()
        if self.config.kl_warmup:
            out["kl_weight"] = weight.detach()
        out.update({f"kl_{i}": k.mean().detach() for i, k in enumerate(kls)})
        return out

    def train_step(self, x, y, ctx):
        """One Adam step on -ELBO/dim, skipped when the gradient norm is above ``skip_threshold``.

        Logs ``grad_norm``, ``skipped`` (1 for a skipped update: its window mean is the fraction
        skipped) and ``skipped_updates`` (the running count, also kept in checkpoints).
        """
        out = ctx.forward(x, y)
        threshold = self.config.skip_threshold
        stepped = ctx.step(out["loss"], "main", skip_if_grad_norm_above=threshold)
        if threshold is None:
            return out
        if not stepped:
            self.skipped_updates += 1
        out["grad_norm"] = ctx.grad_norms["main"]
        out["skipped"] = 0.0 if stepped else 1.0
        out["skipped_updates"] = float(self.skipped_updates)
        return out

    def elbo(self, x):
        """ELBO with the analytic per-layer KLs (lower variance than the one-sample weight), (B,) nats."""
        params, layers = self.layers(x)
        return self.likelihood.log_prob(params, x) - torch.stack([layer["kl"] for layer in layers], 1).sum(1)

    def log_importance_weights(self, x, k):
        return self._log_weights(x, self.bottom_up(x), k, self._rows_per_block())

    def _log_weights(self, x, acts, k: int, block: int) -> torch.Tensor:
        """(B, k) log-weights for k fresh z ~ q(z|x), at most about ``block`` top-down rows per pass."""
        rows = max(1, block // k)  # examples per pass
        parts = []
        for i in range(0, len(x), rows):
            xb = x[i : i + rows]
            n = len(xb)
            params, layers = self._top_down(n * k, acts=[a[i : i + rows].repeat_interleave(k, 0) for a in acts])
            lw = self.likelihood.log_prob(params, xb.repeat_interleave(k, 0))
            lw = lw + torch.stack([layer["log_ratio"] for layer in layers], 1).sum(1)
            parts.append(lw.view(n, k))
        return torch.cat(parts)

    def log_prob_estimate(self, x, k=100, chunk=None, *, y=None):
        """Importance-sampled log p(x): ``(estimate (B,), stderr (B,))`` nats.

        x goes through the bottom-up encoder once; the K proposals are drawn ``chunk`` at a time
        (default: as many as one block of top-down passes holds for the whole batch), each chunk
        in blocks of about :data:`IS_BLOCK_BYTES` of estimated activations.
        """
        from deepgen.metrics.likelihood import logmeanexp_with_stderr

        acts = self.bottom_up(x)
        block = self._rows_per_block()
        chunk = chunk or max(1, block // max(1, len(x)))
        parts = [self._log_weights(x, acts, min(chunk, k - i), block) for i in range(0, k, chunk)]
        return logmeanexp_with_stderr(torch.cat(parts, 1))

    def _rows_per_block(self) -> int:
        """Top-down rows per pass: :data:`IS_BLOCK_BYTES` over the estimated bytes per row.

        Measured once by a one-row dry run: the largest of any layer's input plus output (plus the
        unfolded input of a CPU convolution), the bottom-up activations each row carries, and
        about 24 tensors of the data's size in the likelihood's log-prob.
        """
        if self._is_block is None:
            sizes: list[int] = [0]

            def record(module, inputs, out):
                if torch.is_tensor(out) and inputs and torch.is_tensor(inputs[0]):
                    n_in = inputs[0].numel()
                    unfolded = n_in * math.prod(module.kernel_size) if isinstance(module, nn.Conv2d) else 0
                    sizes.append(n_in + out.numel() + unfolded)

            p = self.h0
            hooks = [m.register_forward_hook(record) for m in [*self.cells.modules(), self.out]]
            try:
                with torch.no_grad():
                    acts = self.bottom_up(torch.zeros(1, *self.info.shape, device=p.device, dtype=p.dtype))
                    self._top_down(1, acts=acts)
            finally:
                for hook in hooks:
                    hook.remove()
            per_row = (max(sizes) + sum(a.numel() for a in acts) + 24 * self.info.dim) * p.element_size()
            self._is_block = max(1, IS_BLOCK_BYTES // per_row)
        return self._is_block

    # -- sampling ----------------------------------------------------------------------------------
    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        """Ancestral sampling from the top-down prior at ``options.temperature``, then x ~ p(x|z)
        (or its mean when ``options.mean``)."""
        params, _ = self._top_down(n, temperature=options.temperature, generator=generator)
        return self.likelihood.mean(params) if options.mean else self.likelihood.sample(params, generator)
