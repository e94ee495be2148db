"""Bijectors: invertible maps with log-determinants, one contract, direction data -> latent.

``forward(x, context=None) -> (z, log|det dz/dx|)`` and ``inverse(z, context=None) -> (x, log|det dx/dz|)``,
log-dets of shape (B,). See :mod:`deepgen.bijectors.base` for the contract, :class:`Compose` and
:class:`Inverse`; :mod:`~deepgen.bijectors.elementwise` and :mod:`~deepgen.bijectors.permutations` for
the reference layers; :class:`StandardNormal` for the base distribution of flows; and
:func:`~deepgen.bijectors.testing.check_bijector` to check a new layer.
"""

from deepgen.bijectors.base import (
    Bijector,
    Compose,
    Identity,
    Inverse,
    NoInverseError,
    bisection_inverse,
    fixed_point_inverse,
    sum_except_batch,
    zero_log_det,
)
from deepgen.bijectors.distributions import StandardNormal
from deepgen.bijectors.elementwise import Affine, ConditionalAffine, Logit, Rescale, Sigmoid, Tanh
from deepgen.bijectors.permutations import Permute, RandomPermutation, Reverse

__all__ = [
    "Bijector",
    "Compose",
    "Identity",
    "Inverse",
    "NoInverseError",
    "bisection_inverse",
    "fixed_point_inverse",
    "sum_except_batch",
    "zero_log_det",
    "StandardNormal",
    "Affine",
    "ConditionalAffine",
    "Logit",
    "Rescale",
    "Sigmoid",
    "Tanh",
    "Permute",
    "RandomPermutation",
    "Reverse",
]
