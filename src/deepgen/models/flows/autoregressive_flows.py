"""Autoregressive and spline flows: MAF, IAF and Neural Spline Flows.

* MAF: Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow for Density Estimation" (2017,
  arXiv:1705.07057). Each layer is ``z_i = (x_i - mu_i(x_<i)) exp(-alpha_i(x_<i))`` (eq. 2-5) with a
  MADE conditioner: the density takes one pass, sampling D passes. Layers alternate orderings
  (natural, reversed), optionally with batch-norm flows between them (sec. 3.4).
* IAF: Kingma et al., "Improved Variational Inference with Inverse Autoregressive Flow" (2016,
  arXiv:1606.04934): the inverse of MAF's layers. Sampling takes one pass per layer; the density of
  external data takes D passes per layer, so IAF suits low dimensions or variational posteriors.
* NSF: Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows" (2019, arXiv:1906.04032).
  Monotone rational-quadratic splines with K bins on [-B, B] and linear tails, either in coupling
  layers (RQ-NSF (C)) or autoregressive layers (RQ-NSF (AR)), each preceded by an invertible
  linear map (LU-parametrised; sec. 3.3 and 4).

All are vector flows: images are flattened after the logit preprocessing. Exact densities.

>>> from deepgen.data import DataInfo
>>> m = NSF(DataInfo("toy", (2,)), NSFConfig(layers=2, hidden=(8,)))
>>> m.log_prob(torch.zeros(3, 2)).shape, m.sample(4).shape
(torch.Size([3]), torch.Size([4, 2]))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from deepgen.bijectors import (
    BatchNormFlow,
    Bijector,
    Coupling,
    InverseAutoregressive,
    InvertibleLinear,
    MaskedAffineAutoregressive,
    MaskedSplineAutoregressive,
    RQSplineTransform,
)
from deepgen.errors import ConfigError
from deepgen.models.flows.common import VectorFlow, check_layers
from deepgen.registry import register


@dataclass(frozen=True)
class MAFConfig:
    """Options of :class:`MAF` and :class:`IAF`.

    layers: masked autoregressive layers (MAF's paper: 5 or 10), alternating natural and reversed
        orderings.
    hidden: MADE hidden sizes of each layer.
    batch_norm: a batch-norm flow after every layer but the last (MAF, sec. 3.4).
    clamp: bound on each layer's log-scale (soft clamp), against exploding scales.
    class_conditional: condition every MADE on the class label.
    """

    layers: int = 5
    hidden: tuple[int, ...] = (64, 64)
    batch_norm: bool = False
    clamp: float = 3.0
    class_conditional: bool = False

    def __post_init__(self):
        check_layers("MAF", self.layers, self.hidden)
        if self.clamp <= 0:
            raise ConfigError(f"clamp must be positive, got {self.clamp}")


@register("maf")
class MAF(VectorFlow):
    """Masked Autoregressive Flow (Papamakarios et al. 2017, arXiv:1705.07057): exact density, fast to score.

    Shapes: data (B, *info.shape) flattened to (B, D); latents (B, D). Sampling runs D MADE passes per layer.
    """

    Config = MAFConfig
    condition_option = "class_conditional"
    test_options = {"layers": 2, "hidden": (8,)}
    layer_class = MaskedAffineAutoregressive

    def build_layers(self, d):
        cfg = self.config
        out: list[Bijector] = []
        for i in range(cfg.layers):
            order = "natural" if i % 2 == 0 else "reverse"
            out.append(
                self.layer_class(
                    d, cfg.hidden, clamp=cfg.clamp, order=order, context_features=self.context_features, seed=i
                )
            )
            if cfg.batch_norm and i < cfg.layers - 1:
                out.append(BatchNormFlow(d))
        return out


@register("iaf")
class IAF(MAF):
    """Inverse Autoregressive Flow (Kingma et al. 2016, arXiv:1606.04934) as a density model.

    Each layer is the inverse of a MAF layer: sampling is one MADE pass per layer, the density of
    data D passes per layer (so training by maximum likelihood is D times slower than MAF's).
    """

    layer_class = InverseAutoregressive


@dataclass(frozen=True)
class NSFConfig:
    """Options of :class:`NSF`.

    layers: spline layers, each preceded by an LU-parametrised invertible linear map.
    hidden: hidden sizes of each conditioner (MLP for couplings, MADE for autoregressive layers).
    kind: coupling (RQ-NSF (C): one pass both ways) or autoregressive (RQ-NSF (AR): one pass to
        score, D passes to sample).
    num_bins: K, the spline's bins (the paper uses 8 on 2-D toys and tabular data).
    bound: B, the splines act on [-B, B]; linear (identity) tails outside.
    linear: the invertible linear map before each layer (False: none; the layers alternate which
        half conditions (couplings) or the order (autoregressive), so every entry is still transformed).
    class_conditional: condition every conditioner on the class label.
    """

    layers: int = 4
    hidden: tuple[int, ...] = (64, 64)
    kind: Literal["coupling", "autoregressive"] = "autoregressive"
    num_bins: int = 8
    bound: float = 4.0
    linear: bool = True
    class_conditional: bool = False

    def __post_init__(self):
        check_layers("NSF", self.layers, self.hidden)
        if self.num_bins < 1 or not self.bound > 0:
            raise ConfigError(f"NSF needs num_bins >= 1 and bound > 0, got {self.num_bins}, {self.bound}")


@register("nsf")
class NSF(VectorFlow):
    """Neural Spline Flow (Durkan et al. 2019, arXiv:1906.04032): rational-quadratic splines; exact density."""

    Config = NSFConfig
    condition_option = "class_conditional"
    test_options = {"layers": 2, "hidden": (8,), "num_bins": 4}

    def build_layers(self, d):
        cfg = self.config
        if cfg.kind == "coupling" and d < 2:
            raise ConfigError("NSF couplings need at least 2 dimensions")
        out: list[Bijector] = []
        for i in range(cfg.layers):
            if cfg.linear:
                out.append(InvertibleLinear(d, seed=i))
            if cfg.kind == "coupling":
                out.append(
                    Coupling(
                        d,
                        RQSplineTransform(cfg.num_bins, cfg.bound),
                        mask="half",
                        parity=i % 2,
                        hidden=cfg.hidden,
                        context_features=self.context_features,
                    )
                )
            else:
                out.append(
                    MaskedSplineAutoregressive(
                        d,
                        cfg.hidden,
                        cfg.num_bins,
                        cfg.bound,
                        order="natural" if i % 2 == 0 else "reverse",
                        context_features=self.context_features,
                        seed=i,
                    )
                )
        return out


_ = torch  # doctest namespace
