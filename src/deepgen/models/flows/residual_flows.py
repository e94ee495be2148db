"""Planar flows and Residual Flows: residual maps ``z = x + g(x)`` made invertible by a constraint.

* Planar flow: Rezende & Mohamed, "Variational Inference with Normalizing Flows" (2015,
  arXiv:1505.05770, eq. 10-12): ``z = x + u h(w^T x + b)`` with ``w^T u >= -1`` (appendix A). The
  log-determinant is exact and cheap; there is no closed-form inverse, so sampling solves a scalar
  equation per layer by bisection (:class:`~deepgen.bijectors.Planar`). A stack of planar layers
  is a weak density model in more than a few dimensions (each layer only bends along one direction)
  -- the paper used them as variational posteriors -- but an honest one to compare.
* Residual Flow: Chen, Behrmann, Duvenaud & Jacobsen, "Residual Flows for Invertible Generative
  Modeling" (2019, arXiv:1906.02735), building on i-ResNet (Behrmann et al. 2019,
  arXiv:1811.00995). Blocks ``z = x + g(x)`` with spectrally normalised ``g`` (Lip(g) < 1) and
  LipSwish activations, ActNorm between blocks. Training uses the unbiased Russian-roulette
  estimate of ``log det(I + J_g)`` (eq. 6-7). Evaluation uses the exact log-determinant when an
  example has at most ``exact_max_dim`` entries (2-D toys) and the roulette estimate otherwise,
  so ``deepgen eval`` labels the number an *estimate* there. Images use the multiscale
  architecture (squeeze, blocks, factor out half the channels).

>>> from deepgen.data import DataInfo
>>> m = ResidualFlow(DataInfo("toy", (2,)), ResidualFlowConfig(blocks=2, hidden=(8,))).eval()
>>> m.log_likelihood(torch.zeros(3, 2)).kind.value, m.train().log_det_is_exact
('exact', False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from deepgen.bijectors import (
    ActNorm,
    Bijector,
    Compose,
    Factor,
    Inverse,
    Planar,
    ResidualBlock,
    Squeeze,
    lipschitz_convnet,
    lipschitz_mlp,
)
from deepgen.errors import ConfigError
from deepgen.models.flows.base import Flow
from deepgen.models.flows.common import VectorFlow, check_levels, nest, squeezes_allowed
from deepgen.registry import register


@dataclass(frozen=True)
class PlanarConfig:
    """Options of :class:`PlanarFlow`.

    layers: planar layers (the paper: up to 80 in its variational experiments).
    """

    layers: int = 32

    def __post_init__(self):
        if self.layers < 1:
            raise ConfigError(f"planar needs at least one layer, got {self.layers}")


@register("planar")
class PlanarFlow(VectorFlow):
    """A stack of planar layers (Rezende & Mohamed 2015, arXiv:1505.05770) as a density model; exact density.

    Sampling inverts each layer numerically (bisection on one scalar per example and layer).
    """

    Config = PlanarConfig
    test_options = {"layers": 2}

    def build_layers(self, d):
        return [Planar(d) for _ in range(self.config.layers)]


@dataclass(frozen=True)
class ResidualFlowConfig:
    """Options of :class:`ResidualFlow`.

    blocks: residual blocks (vectors: in total; images: per level, before and after each squeeze).
    hidden: hidden sizes of each block's Lipschitz MLP (vectors); images: hidden[0] channels of its
        Lipschitz convnet.
    levels: image levels (0: as many as the image allows, at most 3).
    coeff: Lipschitz bound of each branch (spectral normalisation coefficient, < 1).
    train_log_det: roulette (unbiased, the paper's) or series (truncated, biased) in training.
    n_terms: terms of the truncated series.
    geometric_p: success probability of the roulette's geometric number of extra terms.
    exact_max_dim: evaluate the exact log-det when an example has at most this many entries.
    actnorm: ActNorm before every block (the paper's).
    """

    blocks: int = 8
    hidden: tuple[int, ...] = (64, 64)
    levels: int = 0
    coeff: float = 0.97
    train_log_det: Literal["roulette", "series"] = "roulette"
    n_terms: int = 10
    geometric_p: float = 0.5
    exact_max_dim: int = 16
    actnorm: bool = True

    def __post_init__(self):
        if self.blocks < 1 or self.levels < 0:
            raise ConfigError("resflow needs blocks >= 1 and levels >= 0")
        if not 0 < self.coeff < 1:
            raise ConfigError(f"coeff must lie in (0, 1) for invertibility, got {self.coeff}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"resflow hidden sizes must be positive and non-empty, got {self.hidden}")


@register("resflow")
class ResidualFlow(Flow):
    """Residual Flow (Chen et al. 2019, arXiv:1906.02735): invertible residual blocks.

    Density: exact in evaluation for examples of at most ``exact_max_dim`` entries, otherwise an
    unbiased Russian-roulette estimate (labelled *estimate*); training always uses the estimator.
    Sampling inverts each block by fixed-point iteration.
    """

    Config = ResidualFlowConfig
    density_summary = "exact in low dimensions, else unbiased estimate (dequantisation bound on discrete data)"
    test_options = {"blocks": 1, "hidden": (8,)}

    def build_bijector(self):
        cfg, shape = self.config, self.info.shape
        pre = self.preprocess(self.info)
        if len(shape) == 1:
            return Compose(pre, *(b for i in range(cfg.blocks) for b in self._block(shape)))
        if len(shape) != 3:
            raise ConfigError(f"resflow models vectors or images, got examples of shape {shape}")
        levels = check_levels("resflow", shape, cfg.levels, squeezes_allowed(shape) + 1, 3)
        return Compose(pre, nest(shape, levels, self._level))

    def _block(self, shape) -> list[Bijector]:
        cfg = self.config
        if len(shape) == 1:
            g = lipschitz_mlp(shape[0], cfg.hidden, coeff=cfg.coeff)
        else:
            g = lipschitz_convnet(shape[0], cfg.hidden[0], coeff=cfg.coeff)
        block = ResidualBlock(
            g,
            log_det=self._mode(True),
            n_terms=cfg.n_terms,
            geometric_p=cfg.geometric_p,
            exact_max_dim=max(cfg.exact_max_dim, 1),
        )
        return [ActNorm(shape[0]), block] if cfg.actnorm else [block]

    def _level(self, shape, inner: Bijector | None) -> Bijector:
        n = self.config.blocks
        first = [b for _ in range(n) for b in self._block(shape)]
        if inner is None:
            return Compose(*first)
        c, h, w = shape
        squeezed = (4 * c, h // 2, w // 2)
        second = [b for _ in range(n) for b in self._block(squeezed)]
        return Compose(*first, Squeeze(), *second, Factor(2 * c, inner), Inverse(Squeeze()))

    def _mode(self, training: bool) -> str:
        """Training: ``train_log_det``. Evaluation: exact for small examples, else the unbiased
        roulette estimate (also after training with the biased truncated series)."""
        if training:
            return self.config.train_log_det
        return "exact" if self.info.dim <= self.config.exact_max_dim else "roulette"

    def train(self, mode: bool = True):
        """Switch the blocks' log-det estimator with the mode (exact in eval for small examples).

        The spectral-norm layers run their power iterations to convergence themselves when they
        switch to eval."""
        super().train(mode)
        for m in self.bijector.modules():
            if isinstance(m, ResidualBlock):
                m.log_det_mode = self._mode(mode)
        return self


_ = torch  # doctest namespace
