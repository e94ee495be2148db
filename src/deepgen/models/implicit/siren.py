"""SIREN: a signal fitted as a function of its coordinates (Sitzmann et al., 2020, arXiv:2006.09661).

Trained on one signal (data of kind ``signal``: rows of coordinates in [-1, 1]^d and their values),
the network Phi(c) regresses the values by mean squared error. Because Phi is a function of continuous
coordinates it can be queried anywhere: ``sample`` renders it on any grid (``-s resolution=256,256``),
and ``deepgen eval`` measures PSNR and SSIM at twice the training resolution, between the pixels it
was fitted on.

The network works on values centred to [-1, 1], as the paper's images are: the prediction is
``0.5 + 0.5 net(c)``, so a network that starts near zero output starts at mid-grey instead of
having to learn the offset of 0.5 first (on a 128 px photo, 300 steps: 31.0 dB against 27.1 dB
for the uncentred net). The baselines share it.

``fit`` chooses what is supervised (the paper's Section 4.1): the values themselves, or only the
signal's gradient or Laplacian with respect to the coordinates, matched by the network's own
derivatives through autograd (Poisson reconstruction: the photo is recovered from its derivatives).
The targets are the signal's derivative columns (:mod:`deepgen.data.signals`: exact for analytic
fields, Sobel and 5-point finite differences for photos, as in the paper). Derivatives fix a
signal only up to what they cannot see: a constant for the gradient, a harmonic function (a constant
and linear ramps, among others) for the Laplacian. deepgen sets the constant from the values' mean
(a running mean of ``values - Phi`` over training batches, the buffer ``offset``) and nothing else, so
the PSNR of a derivative fit measures the reconstruction up to that one known number. The loss is
the mean squared derivative error divided by the mean square of the target derivatives (a relative
error, so its scale does not depend on the grid's spacing).

``activation`` chooses the network (:mod:`deepgen.nn.siren`): ``sine`` (SIREN, w0 = 30 and its
initialisation), ``relu`` (a ReLU MLP) or ``fourier`` (a ReLU MLP on random Fourier features,
Tancik et al., 2020), the paper's baselines. A signal model has no density: it is one function, not
a distribution over examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from deepgen.config import check_positive
from deepgen.data.signals import coordinate_grid, rows_to_values, split_targets
from deepgen.errors import ConfigError
from deepgen.models.base import GenerativeModel
from deepgen.nn.siren import FourierFeatures, Siren, relu_mlp
from deepgen.registry import register


@dataclass(frozen=True)
class SIRENConfig:
    """Options of :class:`SIREN`.

    Attributes:
        activation: ``sine`` (SIREN), ``relu`` or ``fourier`` (ReLU on random Fourier features).
        fit: supervise the ``values``, or only the signal's ``gradient`` or ``laplacian``.
        hidden: width of every hidden layer; layers: hidden layers.
        w0: SIREN's frequency factor (every layer, the first included).
        fourier_features: random frequencies F of the ``fourier`` baseline (2F input features);
        fourier_scale: their standard deviation sigma.
    """

    activation: Literal["sine", "relu", "fourier"] = "sine"
    fit: Literal["values", "gradient", "laplacian"] = "values"
    hidden: int = 256
    layers: int = 3
    w0: float = 30.0
    fourier_features: int = 128
    fourier_scale: float = 10.0

    def __post_init__(self):
        check_positive(self, "hidden", "layers", "w0", "fourier_features", "fourier_scale")


@dataclass(frozen=True)
class SIRENSampleConfig:
    """Rendering options: ``resolution`` of the grid (None: the signal's native grid)."""

    resolution: tuple[int, ...] | None = None


@register("siren")
class SIREN(GenerativeModel):
    """SIREN (sine activations) or its ReLU / Fourier-feature baselines, fitted to one signal."""

    family = "implicit"
    Config = SIRENConfig
    SampleConfig = SIRENSampleConfig
    data_kinds = ("signal",)
    density_summary = "none (one fitted signal, not a distribution)"
    loss_units = "mean squared error (fit=values) or relative derivative error"
    test_options = {"hidden": 16, "layers": 2, "fourier_features": 8}
    train_defaults = {"lr": 1e-4}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        d, c = info.coord_dim, info.channels
        if cfg.activation == "sine":
            self.net = Siren(d, c, cfg.hidden, cfg.layers, cfg.w0, cfg.w0)
        elif cfg.activation == "relu":
            self.net = relu_mlp(d, c, cfg.hidden, cfg.layers)
        else:
            ff = FourierFeatures(d, cfg.fourier_features, cfg.fourier_scale)
            self.net = torch.nn.Sequential(ff, relu_mlp(2 * cfg.fourier_features, c, cfg.hidden, cfg.layers))
        if cfg.fit != "values":  # the constant of integration, from the values' mean (see the module docstring)
            self.register_buffer("offset", torch.zeros(c))

    def why_no_density(self) -> str:
        return (
            "a SIREN is one fitted signal (coordinates -> values), not a distribution; evaluate it with PSNR and SSIM"
        )

    def field(self, x: torch.Tensor) -> torch.Tensor:
        """The network's values (N, C) at ``x`` before the constant of integration: ``0.5 + 0.5 net(x)``,
        so the network itself works on values in [-1, 1], centred as in the paper (its images are
        normalised to [-1, 1]); a network that starts at zero output starts at mid-grey."""
        return 0.5 + 0.5 * self.net(x)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Values (N, C) at coordinates ``x`` (N, d)."""
        out = self.field(x)
        return out + self.offset if self.config.fit != "values" else out

    def derivatives(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The network's values (N, C), gradient (N, C d) (channel-major, as the data's columns) and,
        for ``fit=laplacian``, Laplacian (N, C) at ``x``, by autograd (differentiable: a graph is kept)."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            out = self.field(x)
            grads = [torch.autograd.grad(out[:, k].sum(), x, create_graph=True)[0] for k in range(out.shape[1])]
            lap = None
            if self.config.fit == "laplacian":
                second = lambda g, j: torch.autograd.grad(g[:, j].sum(), x, create_graph=True)[0][:, j]  # noqa: E731
                lap = torch.stack([sum(second(g, j) for j in range(x.shape[1])) for g in grads], 1)
        return out, torch.cat(grads, 1), lap

    def loss(self, x, y=None):
        if y is None:
            raise ConfigError("siren regresses values on coordinates: pass the targets y")
        values, grad_t, lap_t = split_targets(y, self.info.channels)
        if self.config.fit == "values":
            mse = (self.predict(x) - values).pow(2).mean()
            return {"loss": mse, "psnr_db": -10 * torch.log10(mse.detach().clamp_min(1e-12))}
        out, grad, lap = self.derivatives(x)
        pred, target = (grad, grad_t) if lap is None else (lap, lap_t)
        rel = (pred - target).pow(2).mean() / target.pow(2).mean().clamp_min(1e-12)
        if self.training:  # running constant of integration (exact for full batches after a few steps)
            self.offset.lerp_((values - out).mean(0).detach(), 0.1)
        mse = (out.detach() + self.offset - values).pow(2).mean()
        return {"loss": rel, "psnr_db": -10 * torch.log10(mse.clamp_min(1e-12))}

    @torch.no_grad()
    def render(self, resolution: tuple[int, ...], batch_size: int = 65536) -> torch.Tensor:
        """The fitted signal on a grid: values (C, *resolution), clamped to [0, 1]."""
        coords = coordinate_grid(resolution).to(self.device)
        rows = torch.cat([self.predict(coords[i : i + batch_size]) for i in range(0, len(coords), batch_size)])
        return rows_to_values(rows, tuple(resolution)).clamp(0, 1)

    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        res = tuple(options.resolution) if options.resolution else tuple(self.info.grid)
        if len(res) != self.info.coord_dim:
            raise ConfigError(f"resolution needs {self.info.coord_dim} sizes, got {len(res)}")
        return self.render(res).unsqueeze(0).expand(n, *([-1] * (len(res) + 1))).clone()
