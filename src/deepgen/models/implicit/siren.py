"""SIREN: a signal fitted as a function of its coordinates (Sitzmann et al., 2020, arXiv:2006.09661).

Trained on one signal (data of kind ``signal``: rows of coordinates in [-1, 1]^d and their values),
the network Phi(c) regresses the values by mean squared error. Because Phi is a function of continuous
coordinates it can be queried anywhere: ``sample`` renders it on any grid (``-s resolution=256,256``),
and ``deepgen eval`` measures PSNR and SSIM at twice the training resolution, between the pixels it
was fitted on.

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
from deepgen.data.signals import coordinate_grid, rows_to_values
from deepgen.errors import ConfigError
from deepgen.models.base import GenerativeModel
from deepgen.nn.siren import FourierFeatures, Siren, relu_mlp
from deepgen.registry import register


@dataclass(frozen=True)
class SIRENConfig:
    """Options of :class:`SIREN`.

    Attributes:
        activation: ``sine`` (SIREN), ``relu`` or ``fourier`` (ReLU on random Fourier features).
        hidden: width of every hidden layer; layers: hidden layers.
        w0: SIREN's frequency factor (every layer, the first included).
        fourier_features: random frequencies F of the ``fourier`` baseline (2F input features);
        fourier_scale: their standard deviation sigma.
    """

    activation: Literal["sine", "relu", "fourier"] = "sine"
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
    loss_units = "mean squared error"
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

    def why_no_density(self) -> str:
        return (
            "a SIREN is one fitted signal (coordinates -> values), not a distribution; evaluate it with PSNR and SSIM"
        )

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Values (N, C) at coordinates ``x`` (N, d)."""
        return self.net(x)

    def loss(self, x, y=None):
        if y is None:
            raise ConfigError("siren regresses values on coordinates: pass the targets y")
        mse = (self.predict(x) - y).pow(2).mean()
        return {"loss": mse, "psnr_db": -10 * torch.log10(mse.detach().clamp_min(1e-12))}

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
