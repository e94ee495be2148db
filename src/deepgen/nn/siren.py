"""Coordinate networks: SIREN (sine activations) and the baselines it is compared with.

SIREN (Sitzmann et al., 2020, arXiv:2006.09661) is an MLP Phi(c) with layers

    x -> sin(w0 (W x + b)),

w0 = 30, and an initialisation that keeps the distribution of activations the same at every depth
(the paper's Section 3.2 and supplement 1): the first layer's weights are U(-1/n, 1/n) for n inputs
(so with w0 = 30 its sines span several periods over [-1, 1]), every later layer's
U(-sqrt(6/n)/w0, sqrt(6/n)/w0). Then, for inputs whose activations are arcsine-distributed on
[-1, 1] (variance 1/2), every pre-activation w0 (W x + b) is approximately N(0, 1) and every
layer's output sin(.) is again arcsine-distributed: the network neither saturates nor fades with
depth. The last layer is linear.

Baselines of the same shape: a ReLU MLP, and a ReLU MLP on random Fourier features
gamma(c) = [cos(2 pi B c), sin(2 pi B c)] with B ~ N(0, sigma^2) (Tancik et al., 2020,
arXiv:2006.10739), which lets ReLU networks represent high frequencies.

>>> net = Siren(2, 3, hidden=32, layers=2)
>>> net(torch.zeros(5, 2)).shape
torch.Size([5, 3])
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SineLayer(nn.Module):
    """x (B, n) -> sin(w0 (W x + b)) (B, m), with SIREN's initialisation (``first``: U(-1/n, 1/n))."""

    def __init__(self, n_in: int, n_out: int, w0: float = 30.0, first: bool = False):
        super().__init__()
        self.w0 = w0
        self.linear = nn.Linear(n_in, n_out)
        bound = 1 / n_in if first else math.sqrt(6 / n_in) / w0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)
            self.linear.bias.uniform_(-bound, bound)

    def preactivation(self, x: torch.Tensor) -> torch.Tensor:
        """w0 (W x + b): the argument of the sine."""
        return self.w0 * self.linear(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.preactivation(x))

    def extra_repr(self) -> str:
        return f"w0={self.w0}"


class Siren(nn.Sequential):
    """Coordinates (B, d) -> values (B, out): ``layers`` sine layers of width ``hidden``, then a linear
    layer (initialised like a sine layer, as in the paper's code, so outputs start small)."""

    def __init__(self, d: int, out: int, hidden: int = 256, layers: int = 3, w0: float = 30.0, w0_first: float = 30.0):
        mods = [SineLayer(d, hidden, w0_first, first=True)]
        mods += [SineLayer(hidden, hidden, w0) for _ in range(layers - 1)]
        last = nn.Linear(hidden, out)
        with torch.no_grad():
            bound = math.sqrt(6 / hidden) / w0
            last.weight.uniform_(-bound, bound)
            last.bias.zero_()
        super().__init__(*mods, last)


class FourierFeatures(nn.Module):
    """c (B, d) -> [cos(2 pi B c), sin(2 pi B c)] (B, 2F), with a fixed B (F, d) ~ N(0, scale^2)."""

    def __init__(self, d: int, features: int = 128, scale: float = 10.0):
        super().__init__()
        self.register_buffer("B", torch.randn(features, d) * scale)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        proj = 2 * math.pi * c @ self.B.T
        return torch.cat([torch.cos(proj), torch.sin(proj)], -1)


def relu_mlp(d: int, out: int, hidden: int = 256, layers: int = 3) -> nn.Sequential:
    """The ReLU baseline: ``layers`` ReLU layers of width ``hidden``, then a linear layer."""
    mods: list[nn.Module] = []
    n = d
    for _ in range(layers):
        mods += [nn.Linear(n, hidden), nn.ReLU()]
        n = hidden
    return nn.Sequential(*mods, nn.Linear(n, out))
