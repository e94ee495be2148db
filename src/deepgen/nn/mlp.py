"""Multi-layer perceptron with a configurable activation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
}


def activation(name: str) -> nn.Module:
    """An activation module by name (relu, leaky_relu (slope 0.2), elu, silu, gelu, tanh, softplus)."""
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(_ACTIVATIONS)}") from None


class MLP(nn.Sequential):
    """``in_dim -> hidden[0] -> ... -> out_dim`` with an activation between linear layers.

    Input (B, in_dim) -> output (B, out_dim). ``zero_last`` initialises the last layer to zero, which
    makes residual and coupling networks start at the identity.

    >>> MLP(2, 4, hidden=(64, 64))(torch.zeros(8, 2)).shape
    torch.Size([8, 4])
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (256, 256),
        act: str = "relu",
        *,
        zero_last: bool = False,
        spectral_norm: bool = False,
    ):
        layers: list[nn.Module] = []
        dims = [in_dim, *hidden, out_dim]
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            lin = nn.Linear(a, b)
            if i == len(dims) - 2 and zero_last:
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)
            layers.append(nn.utils.parametrizations.spectral_norm(lin) if spectral_norm else lin)
            if i < len(dims) - 2:
                layers.append(activation(act))
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - flattening convenience
        return super().forward(x.flatten(1) if x.dim() > 2 else x)
