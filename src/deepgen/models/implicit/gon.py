"""Gradient Origin Networks (Bond-Taylor & Willcocks, 2021, arXiv:2007.02798) with an implicit decoder.

A GON has no encoder. The latent of x is one gradient step from the origin on the data-fitting loss:

    z(x) = -grad_{z0} L(x, F(z0)) at z0 = 0,

then the decoder is trained on L(x, F(z(x))), differentiating through that inner gradient (second
order), so the decoder learns to make its gradient at the origin an informative code. Here L is the
negative log-likelihood -log p(x | F(z)) of the data's likelihood head (:mod:`deepgen.nn.heads`:
Bernoulli for binary images, discretised logistic for grey levels) *per dimension* (divided by the
number of pixels D), and F is *implicit*: a SIREN of
[pixel coordinate, z] evaluated on the pixel grid (:class:`ImplicitDecoder`), so it can be queried
on a finer grid than it was trained on (``-s resolution=56,56`` for 28x28 MNIST).

The per-dimension scale matters: the latent enters SIREN's first sine layer (w0 = 30), and the
gradient of a *summed* NLL grows with the image (latents of standard deviation ~50 on MNIST), which
puts the decoder's first layer at phases of hundreds of radians, where learning stalls. On digits
(8 x 8, w0 = 30, 300 steps) the summed loss's GON went from 141.7 to 137.6 nats of reconstruction
error, the per-dimension one to 82.0. (The reference code's inner loss is a batch mean, which scales
the latents by 1 / batch size instead.)

``gon``: the GON above. It defines no prior, so to sample it keeps running moments of the latents
it computes during training (buffers, saved with the model) and decodes z ~ N(mean, covariance)
fitted to them; its density is ``none``.

``gon -o encoder=mlp``: the baseline the paper measures GONs against, an autoencoder with the same
implicit decoder whose latent comes from an amortised encoder (an MLP of ``encoder_hidden`` units)
instead of the gradient; everything else (loss, sampling) is the same.

``vgon``: the variational GON, a VAE (:class:`~deepgen.models.vae.VAE`) whose encoder is the
gradient at the origin: q(z | x) = N(mu(g), diag sigma^2(g)) with (mu, log sigma^2) a linear map of
g = -grad_{z0} L_ELBO, where the inner loss is the negative ELBO per dimension at the origin,
evaluated at the posterior mean there (the reference code reparameterises the inner pass too; using the mean makes
q(z | x) a deterministic function of x, so importance-sampled likelihoods are well defined). It has
an ELBO (a bound in bits/dim) and an importance-sampled estimate, samples through z ~ N(0, I), and a
latent space, exactly like the VAE.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from deepgen.config import check_positive
from deepgen.data.signals import coordinate_grid
from deepgen.errors import ConfigError, DataError
from deepgen.models.base import GenerativeModel
from deepgen.models.vae.vae import VAE, VAEConfig, VAESampleConfig, kl_normal_per_dim
from deepgen.nn.heads import likelihood_head
from deepgen.nn.siren import Siren
from deepgen.registry import register


class ImplicitDecoder(nn.Module):
    """z (B, nz) -> per-pixel parameters (B, out, H, W): a SIREN of [coordinate, z] on the pixel grid
    (pixel centres in [-1, 1]^2, as for signals), at the native ``grid`` or any ``resolution``."""

    def __init__(self, nz: int, out: int, grid: tuple[int, int], hidden: int = 128, layers: int = 3, w0: float = 30.0):
        super().__init__()
        self.grid = tuple(grid)
        self.net = Siren(2 + nz, out, hidden, layers, w0, w0)
        self.register_buffer("coords", coordinate_grid(self.grid), persistent=False)

    def forward(self, z: torch.Tensor, resolution: tuple[int, int] | None = None) -> torch.Tensor:
        res = self.grid if resolution is None else tuple(resolution)
        c = self.coords if res == self.grid else coordinate_grid(res).to(z)
        b, n = len(z), len(c)
        inp = torch.cat([c.expand(b, n, 2), z[:, None, :].expand(b, n, z.shape[1])], -1)
        return self.net(inp).transpose(1, 2).reshape(b, -1, *res)


def _grad_at_origin(loss_fn, shape, like: torch.Tensor) -> torch.Tensor:
    """-d sum(loss_fn(z0)) / d z0 at z0 = 0 (B, nz); kept in the graph when gradients are on (training)."""
    train = torch.is_grad_enabled()
    with torch.enable_grad():
        z0 = torch.zeros(shape, device=like.device, dtype=like.dtype, requires_grad=True)
        (g,) = torch.autograd.grad(loss_fn(z0).sum(), z0, create_graph=train)
    return -g


def _check_images(model, info):
    if not info.is_image:
        raise DataError(
            f"{model.name}: an implicit decoder over pixel coordinates needs images; {info.name} has shape {info.shape}"
        )


@dataclass(frozen=True)
class GONConfig:
    """Options of :class:`GON`: ``latent_dim``; the SIREN decoder's ``hidden`` width, ``layers`` and
    ``w0``; ``decoder``: the likelihood head (auto: chosen from the data); ``encoder``: ``gradient``
    (the GON) or ``mlp`` (the autoencoder baseline: a ReLU MLP with one hidden layer of
    ``encoder_hidden`` units)."""

    latent_dim: int = 32
    hidden: int = 128
    layers: int = 3
    w0: float = 30.0
    decoder: str = "auto"
    encoder: Literal["gradient", "mlp"] = "gradient"
    encoder_hidden: int = 256

    def __post_init__(self):
        check_positive(self, "latent_dim", "hidden", "layers", "w0", "encoder_hidden")


@dataclass(frozen=True)
class ImplicitSampleConfig:
    """Sampling options: ``resolution`` (H, W) of the decoded grid (None: the data's); ``mean``: the
    decoder's means E[x | z] instead of draws (not on the data's lattice)."""

    resolution: tuple[int, int] | None = None
    mean: bool = False


def _resolution(info, options) -> tuple[int, int]:
    res = tuple(options.resolution) if options.resolution else tuple(info.shape[1:])
    if len(res) != 2:
        raise ConfigError(f"resolution needs two sizes (H, W), got {res}")
    return res


def _draw_at(model, params: torch.Tensor, res, mean: bool, generator=None) -> torch.Tensor:
    """x ~ p(x | params) (on the data's lattice), or E[x | params] with ``mean``, at resolution ``res``
    (the likelihood head rebuilt for that image size)."""
    info = model.info
    head = model.likelihood
    if res != tuple(info.shape[1:]):
        if hasattr(head, "log_std"):
            raise ConfigError(
                f"{model.name}: a Gaussian decoder's learned per-pixel std exists only at the training resolution"
            )
        head = likelihood_head(replace(info, shape=(info.shape[0], *res)), head.kind, model=model.name)
    return head.mean(params) if mean else head.sample(params, generator)


@register("gon")
class GON(GenerativeModel):
    """Gradient Origin Network with an implicit (SIREN) decoder; samples from a Gaussian fitted to its latents."""

    family = "implicit"
    Config = GONConfig
    SampleConfig = ImplicitSampleConfig
    density_summary = "none (no prior: samples decode a Gaussian fitted to the training latents)"
    loss_units = "nats per dimension (reconstruction)"
    test_options = {"latent_dim": 4, "hidden": 16, "layers": 2}
    train_defaults = {"lr": 1e-4}
    latent_description = "the negative gradient at the origin"

    def __init__(self, info, config=None):
        super().__init__(info, config)
        _check_images(self, info)
        cfg = self.config
        self.likelihood = likelihood_head(info, cfg.decoder, model=self.name)
        self.decoder = ImplicitDecoder(
            cfg.latent_dim,
            info.shape[0] * self.likelihood.params_per_dim,
            info.shape[1:],
            cfg.hidden,
            cfg.layers,
            cfg.w0,
        )
        n = cfg.latent_dim
        if cfg.encoder == "mlp":
            self.encoder = nn.Sequential(
                nn.Flatten(), nn.Linear(info.dim, cfg.encoder_hidden), nn.ReLU(), nn.Linear(cfg.encoder_hidden, n)
            )
        self.register_buffer("z_count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("z_sum", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("z_outer", torch.zeros(n, n, dtype=torch.float64))

    def why_no_density(self) -> str:
        return (
            "a GON has no prior over its latents (use vgon for an ELBO); evaluate samples with FID or reconstructions"
        )

    def nll(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """-log p(x | F(z)), (B,) nats."""
        return -self.likelihood.log_prob(self.decoder(z), x)

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """z(x) = -grad_{z0} nll(x, z0) at the origin (B, latent_dim); the encoder's output for ``encoder=mlp``."""
        if self.config.encoder == "mlp":
            return self.encoder(x)
        d = self.info.dim
        return _grad_at_origin(lambda z0: self.nll(x, z0) / d, (len(x), self.config.latent_dim), x)

    def loss(self, x, y=None):
        z = self.latent(x)
        rec = self.nll(x, z)
        if self.training and torch.is_grad_enabled():
            with torch.no_grad():
                zd = z.detach().double()
                self.z_count += len(zd)
                self.z_sum += zd.sum(0)
                self.z_outer += zd.T @ zd
        return {"loss": rec.mean() / self.info.dim, "reconstruction_nats": rec.mean().detach()}

    def latent_gaussian(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, covariance) of the latents seen in training (N(0, I) before any)."""
        n = self.config.latent_dim
        if self.z_count < 2:
            return torch.zeros(n, device=self.z_sum.device), torch.eye(n, device=self.z_sum.device)
        mean = self.z_sum / self.z_count
        cov = self.z_outer / self.z_count - torch.outer(mean, mean)
        cov = cov + 1e-6 * torch.eye(n, device=cov.device, dtype=cov.dtype)
        return mean.float(), cov.float()

    @torch.no_grad()
    def evaluate(self, x, y=None):
        return {"reconstruction_nats": self.nll(x, self.latent(x)).mean().item()}

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.latent(x)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.likelihood.mean(self.decoder(z))

    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        mean, cov = self.latent_gaussian()
        chol = torch.linalg.cholesky(cov)
        z = mean + torch.randn(n, len(mean), generator=generator, device=self.device) @ chol.T
        res = _resolution(self.info, options)
        return _draw_at(self, self.decoder(z, res), res, options.mean, generator)


@dataclass(frozen=True)
class VGONConfig(VAEConfig):
    """:class:`~deepgen.models.vae.VAEConfig` plus the SIREN decoder's ``siren_hidden``,
    ``siren_layers`` and ``w0`` (the VAE's ``arch``, ``hidden``, ``channels`` and ``act`` are unused)."""

    latent_dim: int = 32
    siren_hidden: int = 128
    siren_layers: int = 3
    w0: float = 30.0


@dataclass(frozen=True)
class VGONSampleConfig(VAESampleConfig):
    """The VAE's sampling options plus ``resolution`` (H, W) of the decoded grid."""

    resolution: tuple[int, int] | None = None


@register("vgon")
class VGON(VAE):
    """Variational GON: a VAE whose encoder is the gradient at the origin; implicit (SIREN) decoder."""

    family = "implicit"
    Config = VGONConfig
    SampleConfig = VGONSampleConfig
    test_options = {"latent_dim": 4, "siren_hidden": 16, "siren_layers": 2}
    train_defaults = {"lr": 1e-4}
    latent_description = "posterior mean of z (from the gradient at the origin)"

    def __init__(self, info, config=None):
        super().__init__(info, config)
        _check_images(self, info)
        cfg = self.config
        n = cfg.latent_dim
        self.encoder = nn.Linear(n, 2 * n)  # g -> (mu, log sigma^2)
        self.decoder = ImplicitDecoder(
            n,
            info.shape[0] * self.likelihood.params_per_dim,
            info.shape[1:],
            cfg.siren_hidden,
            cfg.siren_layers,
            cfg.w0,
        )

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x) from g = -grad_{z0} of the negative ELBO per dimension at the origin (evaluated at its
        posterior mean; per dimension as for :class:`GON`)."""

        def inner(z0):
            mu0, logvar0 = self.encoder(z0).chunk(2, dim=1)
            neg_elbo = -self.likelihood.log_prob(self.decoder(mu0), x) + kl_normal_per_dim(
                mu0, logvar0.clamp(-12.0, 8.0)
            ).sum(1)
            return neg_elbo / self.info.dim

        g = _grad_at_origin(inner, (len(x), self.config.latent_dim), x)
        mu, logvar = self.encoder(g).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        res = _resolution(self.info, options)
        if res == tuple(self.info.shape[1:]):
            return super()._sample(n, options, generator=generator, y=y)
        z = options.temperature * torch.randn(n, self.config.latent_dim, generator=generator, device=self.device)
        return _draw_at(self, self.decoder(z, res), res, options.mean, generator)
