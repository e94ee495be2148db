"""Contract cases of the masked autoregressive layers (MAF, NSF, IAF) and their spline law.

Parameters are random (a layer at the identity would pass the log-det checks trivially), large
enough that every layer is far from the identity. The ``bound=1.0`` spline cases get inputs and
latents (standard deviation 1.5) well beyond the spline's interval, so the identity tails and the
joins at ``±bound`` are checked too.
"""

from __future__ import annotations

import torch

from deepgen.bijectors.autoregressive import (
    InverseAutoregressive,
    MaskedAffineAutoregressive,
    MaskedAutoregressive,
    MaskedSplineAutoregressive,
)
from deepgen.bijectors.base import Bijector
from deepgen.bijectors.splines import RQSplineTransform
from deepgen.bijectors.testing import Case
from deepgen.bijectors.transforms import AffineTransform


def _perturbed(b: Bijector, scale: float = 0.5, seed: int = 0) -> Bijector:
    """Every parameter drawn from N(0, scale^2) (masked MADE weights stay masked in forward)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in b.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return b


CASES = [
    Case("maf-affine", lambda: _perturbed(MaskedAffineAutoregressive(4, (16,))), (5, 4)),
    Case(
        "maf-affine-reverse-context",
        lambda: _perturbed(MaskedAffineAutoregressive(3, (8, 8), context_features=3, order="reverse"), seed=1),
        (6, 3),
        context=3,
    ),
    Case(
        "maf-exp-permutation",
        lambda: _perturbed(MaskedAutoregressive(4, AffineTransform("exp"), (12,), order=[2, 0, 3, 1]), 0.3, seed=2),
        (4, 4),
    ),
    Case(
        "maf-spline-random-order",
        lambda: _perturbed(MaskedAutoregressive(3, RQSplineTransform(5), (12,), order="random", seed=4), seed=3),
        (4, 3),
    ),
    Case("nsf-spline", lambda: _perturbed(MaskedSplineAutoregressive(4, (16,), num_bins=6), seed=4), (5, 4)),
    Case(
        "nsf-spline-beyond-bound",
        lambda: _perturbed(MaskedSplineAutoregressive(3, (12, 12), num_bins=4, bound=1.0), seed=5),
        (6, 3),
    ),
    Case(
        "nsf-spline-context-no-hidden",
        lambda: _perturbed(MaskedSplineAutoregressive(3, (), num_bins=4, bound=1.0, context_features=3), seed=6),
        (6, 3),
        context=3,
    ),
    Case("iaf", lambda: _perturbed(InverseAutoregressive(4, (16,)), seed=7), (5, 4)),
    Case(
        "iaf-context-random-order",
        lambda: _perturbed(InverseAutoregressive(3, (8,), context_features=3, order="random"), seed=8),
        (6, 3),
        context=3,
    ),
]
