"""Coupling flows: NICE (additive couplings) and RealNVP (affine couplings, multiscale on images).

* NICE: Dinh, Krueger & Bengio, "NICE: Non-linear Independent Components Estimation" (2015,
  arXiv:1410.8516). Additive couplings (volume-preserving, eq. 5) alternating which half
  conditions, then a diagonal scaling layer ``exp(S)`` (sec. 3.3) so the flow can change volume.
* RealNVP: Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP" (2017,
  arXiv:1605.08803). Affine couplings ``z_b = x_b exp(s(x_a)) + t(x_a)`` (eq. 7). On vectors: a
  stack of couplings with alternating halves. On images, the paper's multiscale architecture
  (sec. 3.6): at each scale three checkerboard couplings, a squeeze, three channel couplings, and
  half of the channels factored out; four checkerboard couplings at the last scale. Image data
  are dequantised and go through the logit of sec. 4.1 first (:meth:`Flow.preprocess`).

Both are exact densities: ``log p(x) = log N(f(x); 0, I) + log|det df/dx|`` (eq. 3); on discrete data
the reported number is the dequantisation lower bound, in bits/dim for images.

>>> from deepgen.data import DataInfo
>>> m = RealNVP(DataInfo("digits", (1, 8, 8), 17), RealNVPConfig(hidden=(8,), blocks=1, couplings_per_scale=1))
>>> m.log_prob(torch.zeros(2, 1, 8, 8)).shape, m.sample(3).shape
(torch.Size([2]), torch.Size([3, 1, 8, 8]))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from deepgen.bijectors import ActNorm, Affine, BatchNormFlow, Bijector, Compose, Inverse
from deepgen.bijectors.coupling import AdditiveCoupling, AffineCoupling
from deepgen.bijectors.reshape import Factor, Squeeze
from deepgen.errors import ConfigError
from deepgen.models.flows.base import Flow
from deepgen.models.flows.common import VectorFlow, check_layers, check_levels, nest, squeezes_allowed
from deepgen.registry import register


@dataclass(frozen=True)
class NICEConfig:
    """Options of :class:`NICE`.

    layers: additive coupling layers (the paper uses 4), alternating which half conditions.
    hidden: hidden sizes of each coupling's MLP (the paper: 5 layers of 1000 on MNIST). On images
        the data are flattened: NICE is a vector flow.
    mask: which entries condition: half (first/second half) or alternate (even/odd indices, the
        paper's partition).
    class_conditional: condition every coupling on the class label (one-hot input to its MLP).
    """

    layers: int = 4
    hidden: tuple[int, ...] = (256, 256)
    mask: Literal["half", "alternate"] = "alternate"
    class_conditional: bool = False

    def __post_init__(self):
        check_layers("NICE", self.layers, self.hidden)


@register("nice")
class NICE(VectorFlow):
    """NICE (Dinh et al. 2015, arXiv:1410.8516): additive couplings and a diagonal scaling; exact density.

    Shapes: data (B, *info.shape), flattened to (B, D) inside; latents (B, D).
    """

    Config = NICEConfig
    condition_option = "class_conditional"
    test_options = {"layers": 2, "hidden": (8,)}

    min_dim = 2

    def build_layers(self, d):
        cfg = self.config
        layers: list[Bijector] = []
        for i in range(cfg.layers):
            layers.append(
                AdditiveCoupling(
                    d, mask=cfg.mask, parity=i % 2, hidden=cfg.hidden, context_features=self.context_features
                )
            )
        layers.append(Affine(d))  # the scaling layer exp(S) of sec. 3.3
        return layers


@dataclass(frozen=True)
class RealNVPConfig:
    """Options of :class:`RealNVP`.

    layers: affine couplings on vector data, alternating halves.
    hidden: MLP hidden sizes of each coupling (vectors); on images hidden[0] is the channel width
        of each coupling's residual conditioner.
    blocks: residual blocks in each image conditioner (the paper uses 8 on CIFAR-10, 4 on others).
    levels: image scales (0: as many as the image allows, at most 3). Each scale but the last
        squeezes once, so 28x28 MNIST allows 3 and 8x8 digits 4.
    couplings_per_scale: checkerboard couplings before and channel couplings after each squeeze
        (3 in the paper; the last scale has one more checkerboard coupling, or channel couplings
        where it is 1x1).
    scale: how the coupling's raw output becomes its log-scale: softclamp (bounded, default), exp
        (the paper's equation) or sigmoid (Glow's).
    clamp: the bound on each coupling's log-scale with scale=softclamp.
    norm: a normalisation flow layer after every coupling: actnorm (default; data-dependent
        initialisation, Glow's replacement for batch norm, the same map in training and
        evaluation), batchnorm (the paper's batch-normalisation flow of sec. 3.7: batch
        statistics in training, running averages in evaluation) or none. Without one, deep
        multiscale RealNVPs diverged in our MNIST runs within 200 steps at lr 1e-3.
    class_conditional: condition every coupling on the class label.
    """

    layers: int = 8
    hidden: tuple[int, ...] = (64, 64)
    blocks: int = 2
    levels: int = 0
    couplings_per_scale: int = 3
    scale: Literal["softclamp", "exp", "sigmoid"] = "softclamp"
    clamp: float = 3.0
    norm: Literal["actnorm", "batchnorm", "none"] = "actnorm"
    class_conditional: bool = False

    def __post_init__(self):
        check_layers("RealNVP", self.layers, self.hidden)
        if self.blocks < 0 or self.levels < 0 or self.couplings_per_scale < 1:
            raise ConfigError("RealNVP needs blocks >= 0, levels >= 0 and couplings_per_scale >= 1")


@register("realnvp")
class RealNVP(Flow):
    """RealNVP (Dinh et al. 2017, arXiv:1605.08803): affine couplings; multiscale on images; exact density.

    Vectors (B, D): ``layers`` couplings with MLP conditioners. Images (B, C, H, W): the multiscale
    architecture of the module docstring with residual convolutional conditioners; the latent
    has the data's shape (each scale's factored-out channels are put back in place).
    """

    Config = RealNVPConfig
    condition_option = "class_conditional"
    test_options = {"layers": 2, "hidden": (8,), "blocks": 1, "couplings_per_scale": 1}

    def build_bijector(self):
        cfg, shape = self.config, self.info.shape
        pre = self.preprocess(self.info)
        if len(shape) == 1:
            if shape[0] < 2:
                raise ConfigError("RealNVP needs at least 2 dimensions to couple")
            couplings = [self._coupling(shape, parity=i % 2) for i in range(cfg.layers)]
            return Compose(pre, *couplings)
        if len(shape) != 3:
            raise ConfigError(f"RealNVP models vectors or images, got examples of shape {shape}")
        levels = check_levels("realnvp", shape, cfg.levels, squeezes_allowed(shape) + 1, 3)
        return Compose(pre, nest(shape, levels, self._level))

    def _coupling(self, shape, parity: int, mask: str | None = None) -> Bijector:
        cfg = self.config
        coupling = AffineCoupling(
            shape,
            mask=mask,
            parity=parity,
            hidden=cfg.hidden,
            blocks=cfg.blocks,
            scale=cfg.scale,
            clamp=cfg.clamp,
            context_features=self.context_features,
        )
        features = shape[0]  # per feature of vectors, per channel of images
        if cfg.norm == "actnorm":
            return Compose(coupling, ActNorm(features))
        if cfg.norm == "batchnorm":
            return Compose(coupling, BatchNormFlow(features))
        return coupling

    def _level(self, shape, inner: Bijector | None) -> Bijector:
        k = self.config.couplings_per_scale
        if inner is None:  # last scale: k + 1 checkerboard couplings (channel couplings at 1x1, where
            # a checkerboard would condition on everything or on nothing)
            mask = "checkerboard" if shape[1] * shape[2] > 1 else "channel"
            return Compose(*(self._coupling(shape, i % 2, mask) for i in range(k + 1)))
        c, h, w = shape
        squeezed = (4 * c, h // 2, w // 2)
        return Compose(
            *(self._coupling(shape, i % 2, "checkerboard") for i in range(k)),
            Squeeze(),
            *(self._coupling(squeezed, i % 2, "channel") for i in range(k)),
            Factor(2 * c, inner),
            Inverse(Squeeze()),
        )


_ = torch  # doctest namespace
