"""Glow (Kingma & Dhariwal 2018, arXiv:1807.03039): actnorm, invertible 1x1 convolution, affine coupling.

One step of flow (sec. 3, table 1) is

    ActNorm -> invertible 1x1 convolution (LU-parametrised, sec. 3.2) -> affine coupling

On images the steps run in the multiscale architecture of RealNVP (fig. 2): each level squeezes,
runs ``steps`` steps of flow and factors out half of the channels, whose prior is a Gaussian with
mean and scale computed from the other half (the *learned prior* of the split; here an affine
channel coupling just before the factor-out, see :mod:`deepgen.bijectors.reshape`). On vectors
(the 2-D toys) the same step uses an invertible linear map instead of the 1x1 convolution.
``coupling="additive"`` gives the paper's additive variant, ``emerging=True`` adds an emerging 3x3
convolution after each 1x1 convolution (Hoogeboom et al. 2019, arXiv:1901.11137), which that
paper found to improve likelihoods.

Exact density; dequantisation bound in bits/dim on images.

>>> from deepgen.data import DataInfo
>>> m = Glow(DataInfo("digits", (1, 8, 8), 17), GlowConfig(steps=1, hidden=(8,)))
>>> m.log_prob(torch.zeros(2, 1, 8, 8)).shape, m.sample(3).shape
(torch.Size([2]), torch.Size([3, 1, 8, 8]))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from deepgen.bijectors import (
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    Bijector,
    Compose,
    Conv1x1,
    EmergingConv,
    Factor,
    Inverse,
    InvertibleLinear,
    Squeeze,
)
from deepgen.errors import ConfigError
from deepgen.models.flows.base import Flow
from deepgen.models.flows.common import check_levels, nest, squeezes_allowed
from deepgen.registry import register


@dataclass(frozen=True)
class GlowConfig:
    """Options of :class:`Glow`.

    steps: steps of flow per level on images (the paper: 32), in total on vectors.
    hidden: vectors: MLP hidden sizes of each coupling; images: hidden[0] is the channel width of
        each coupling's convolutional conditioner (the paper: 512).
    blocks: residual blocks in each image conditioner.
    levels: image levels, each squeezing once (0: as many as the image allows, at most 3).
    coupling: affine (default) or additive couplings.
    scale: how the affine coupling's scale is computed: sigmoid (Glow's code), softclamp or exp.
    lu: LU-parametrised 1x1 convolutions / linear maps (O(C) log-det), or free matrices.
    emerging: emerging 3x3 convolutions after each 1x1 convolution (images only).
    learned_prior: Gaussian prior of each factored-out half conditioned on the other half.
    class_conditional: condition every coupling (and split prior) on the class label.
    """

    steps: int = 8
    hidden: tuple[int, ...] = (64, 64)
    blocks: int = 1
    levels: int = 0
    coupling: Literal["affine", "additive"] = "affine"
    scale: Literal["sigmoid", "softclamp", "exp"] = "sigmoid"
    lu: bool = True
    emerging: bool = False
    learned_prior: bool = True
    class_conditional: bool = False

    def __post_init__(self):
        if self.steps < 1 or self.blocks < 0 or self.levels < 0:
            raise ConfigError("Glow needs steps >= 1, blocks >= 0 and levels >= 0")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"Glow hidden sizes must be positive and non-empty, got {self.hidden}")


@register("glow")
class Glow(Flow):
    """Glow (Kingma & Dhariwal 2018, arXiv:1807.03039): steps of actnorm, 1x1 conv and coupling.

    Vectors (B, D): ``steps`` steps with invertible linear maps. Images (B, C, H, W): multiscale with
    a learned split prior (module docstring); latents have the data's shape.
    """

    Config = GlowConfig
    condition_option = "class_conditional"
    test_options = {"steps": 1, "hidden": (8,), "blocks": 1}

    def build_bijector(self):
        cfg, shape = self.config, self.info.shape
        pre = self.preprocess(self.info)
        if len(shape) == 1:
            if shape[0] < 2:
                raise ConfigError("Glow needs at least 2 dimensions to couple")
            if cfg.emerging:
                raise ConfigError("emerging convolutions act on images; the data are vectors")
            return Compose(pre, *(self._step(shape, i) for i in range(cfg.steps)))
        if len(shape) != 3:
            raise ConfigError(f"Glow models vectors or images, got examples of shape {shape}")
        levels = check_levels("glow", shape, cfg.levels, squeezes_allowed(shape), 3)
        return Compose(pre, nest(shape, levels, self._level))

    def _coupling(self, shape, parity: int, mask: str) -> Bijector:
        cfg = self.config
        kw = dict(
            mask=mask, parity=parity, hidden=cfg.hidden, blocks=cfg.blocks, context_features=self.context_features
        )
        if cfg.coupling == "additive":
            return AdditiveCoupling(shape, **kw)
        return AffineCoupling(shape, scale=cfg.scale, **kw)

    def _step(self, shape, i: int) -> Bijector:
        cfg = self.config
        if len(shape) == 1:
            return Compose(
                ActNorm(shape[0]), InvertibleLinear(shape[0], lu=cfg.lu, seed=i), self._coupling(shape, 0, "half")
            )
        c = shape[0]
        mix: list[Bijector] = [Conv1x1(c, lu=cfg.lu, seed=i)]
        if cfg.emerging:
            mix.append(EmergingConv(c, 3, seed=i))
        return Compose(ActNorm(c), *mix, self._coupling(shape, 0, "channel"))

    def _level(self, shape, inner: Bijector | None) -> Bijector:
        c, h, w = shape
        squeezed = (4 * c, h // 2, w // 2)
        steps = [self._step(squeezed, i) for i in range(self.config.steps)]
        if inner is None:
            return Compose(Squeeze(), *steps, Inverse(Squeeze()))
        split: list[Bijector] = []
        if self.config.learned_prior:  # the factored-out first half given the second: N(mu(h2), sigma(h2))
            split.append(self._coupling(squeezed, 1, "channel"))
        return Compose(Squeeze(), *steps, *split, Factor(2 * c, inner), Inverse(Squeeze()))


_ = torch  # doctest namespace
