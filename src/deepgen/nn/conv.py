"""Convolutional encoder and decoder for images of any size (8x8 digits, 28x28 MNIST, 32x32, ...).

The encoder halves the resolution with stride-2 3x3 convolutions (``ceil(h / 2)`` each time); the
decoder retraces the same sizes with nearest-neighbour upsampling followed by a 3x3 convolution,
which avoids the checkerboard artefacts of transposed convolutions (Odena et al., 2016) and lands
exactly on odd sizes such as 7. With batch norm and ReLU/LeakyReLU these are the DCGAN generator and
discriminator (Radford et al., 2016, arXiv:1511.06434); without norm they are the usual VAE nets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from deepgen.nn.mlp import activation


def downsample_sizes(h: int, n: int) -> list[int]:
    """Spatial sizes after 0..n stride-2 3x3 convolutions: [h, ceil(h/2), ...]."""
    sizes = [h]
    for _ in range(n):
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "group":
        return nn.GroupNorm(min(8, ch), ch)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; valid: batch, group, none")


def spectral_normed(module: nn.Module, on: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(module) if on else module


class ConvEncoder(nn.Module):
    """Image (B, C, H, W) -> vector (B, out_dim).

    Args:
        in_shape: (C, H, W).
        out_dim: output features.
        channels: channels after each stride-2 convolution; its length sets the downsamplings.
        norm: "none", "batch" or "group" (never on the first layer, as in DCGAN).
        act: activation name (DCGAN discriminators use "leaky_relu").
        spectral_norm: wrap every layer in spectral normalisation (Miyato et al., 2018).
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        out_dim: int,
        channels: Sequence[int] = (32, 64),
        norm: str = "none",
        act: str = "relu",
        spectral_norm: bool = False,
    ):
        super().__init__()
        c, h, w = in_shape
        layers: list[nn.Module] = []
        for i, ch in enumerate(channels):
            layers += [
                spectral_normed(nn.Conv2d(c, ch, 3, stride=2, padding=1), spectral_norm),
                _norm("none" if i == 0 else norm, ch),
                activation(act),
            ]
            c = ch
        self.convs = nn.Sequential(*layers)
        hs, ws = downsample_sizes(h, len(channels))[-1], downsample_sizes(w, len(channels))[-1]
        self.head = spectral_normed(nn.Linear(c * hs * ws, out_dim), spectral_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(x).flatten(1))


class ConvDecoder(nn.Module):
    """Vector (B, in_dim) -> image (B, out_channels, H, W), retracing :class:`ConvEncoder`'s sizes.

    Args:
        in_dim: input features (a latent code).
        out_shape: (C_out, H, W); ``C_out`` may be a multiple of the image channels when the decoder
            outputs several parameters per pixel.
        channels: channels at the lowest resolution first, e.g. (64, 32).
        norm, act: as in :class:`ConvEncoder` (DCGAN generators use "batch" and "relu").
        fc_norm: batch norm after the input layer too, when ``norm`` is "batch" (InfoGAN's generator).
    """

    def __init__(
        self,
        in_dim: int,
        out_shape: Sequence[int],
        channels: Sequence[int] = (64, 32),
        norm: str = "none",
        act: str = "relu",
        fc_norm: bool = False,
    ):
        super().__init__()
        c_out, h, w = out_shape
        hs = downsample_sizes(h, len(channels))[::-1]
        ws = downsample_sizes(w, len(channels))[::-1]
        self.start = (channels[0], hs[0], ws[0])
        n = math.prod(self.start)
        fc_norms = [nn.BatchNorm1d(n)] if fc_norm and norm == "batch" else []
        self.fc = nn.Sequential(nn.Linear(in_dim, n), *fc_norms, activation(act))
        layers: list[nn.Module] = []
        c = channels[0]
        for i in range(len(channels)):
            nxt = channels[i + 1] if i + 1 < len(channels) else channels[-1]
            layers += [
                nn.Upsample(size=(hs[i + 1], ws[i + 1]), mode="nearest"),
                nn.Conv2d(c, nxt, 3, padding=1),
                _norm(norm, nxt),
                activation(act),
            ]
            c = nxt
        layers.append(nn.Conv2d(c, c_out, 3, padding=1))
        self.convs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.convs(self.fc(z).view(-1, *self.start))
