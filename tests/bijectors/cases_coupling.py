"""Contract cases of the coupling layers and the multiscale reshapes (collected by test_bijector_contract)."""

from __future__ import annotations

import torch

from deepgen.bijectors.base import Compose, Inverse
from deepgen.bijectors.coupling import AdditiveCoupling, AffineCoupling, ConvResNet, Coupling
from deepgen.bijectors.reshape import Factor, Squeeze
from deepgen.bijectors.testing import Case
from deepgen.bijectors.transforms import AffineTransform


def _perturbed(b):
    """Random parameters: a zero-initialised coupling is the identity and passes log-det checks trivially."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in b.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return b


def _level():
    """One multiscale level on (2, 4, 4): squeeze, channel couplings, factor out 4 of 8 channels."""
    inner = Compose(_perturbed(AffineCoupling((4, 2, 2), mask="channel", hidden=(6,), blocks=1)))
    return Compose(
        Squeeze(),
        _perturbed(AffineCoupling((8, 2, 2), mask="channel", parity=1, hidden=(6,), blocks=1)),
        Factor(4, inner),
        Inverse(Squeeze()),
    )


CASES = [
    Case("coupling-affine-half", lambda: _perturbed(AffineCoupling(5, hidden=(8,))), (4, 5)),
    Case("coupling-affine-half-parity1", lambda: _perturbed(AffineCoupling(5, parity=1, hidden=(8,))), (4, 5)),
    Case("coupling-affine-alternate", lambda: _perturbed(AffineCoupling(5, mask="alternate", hidden=(8,))), (4, 5)),
    Case("coupling-affine-exp", lambda: _perturbed(AffineCoupling(4, scale="exp", hidden=(8,))), (4, 4)),
    Case("coupling-affine-sigmoid", lambda: _perturbed(AffineCoupling(4, scale="sigmoid", hidden=(8,))), (4, 4)),
    Case("coupling-additive", lambda: _perturbed(AdditiveCoupling(4, mask="alternate", parity=1, hidden=(8,))), (4, 4)),
    Case(
        "coupling-context",
        lambda: _perturbed(AffineCoupling(4, hidden=(8,), context_features=3)),
        (6, 4),
        context=3,
    ),
    Case(
        "coupling-checkerboard",
        lambda: _perturbed(AffineCoupling((2, 4, 4), hidden=(6,), blocks=1)),
        (3, 2, 4, 4),
    ),
    Case(
        "coupling-checkerboard-context",
        lambda: _perturbed(AffineCoupling((1, 4, 4), parity=1, hidden=(6,), blocks=1, context_features=2)),
        (3, 1, 4, 4),
        context=2,
    ),
    Case("coupling-channel", lambda: _perturbed(AffineCoupling((3, 2, 2), mask="channel", hidden=(6,))), (3, 3, 2, 2)),
    Case(
        "coupling-custom-net",
        lambda: _perturbed(Coupling((3,), AffineTransform(), net=ConvFreeNet())),
        (4, 3),
    ),
    Case("squeeze", Squeeze, (2, 2, 4, 6)),
    Case("multiscale-level", _level, (3, 2, 4, 4)),
    Case("factor", lambda: Factor(1, _perturbed(AffineCoupling((2, 2, 2), mask="channel", hidden=(4,)))), (3, 3, 2, 2)),
]


class ConvFreeNet(torch.nn.Module):
    """A user-supplied conditioner: 2 conditioning features -> 1 transformed feature x 2 parameters."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)

    def forward(self, x):
        return torch.tanh(self.lin(x))


_ = ConvResNet  # the image conditioner is exercised by the checkerboard and channel cases
