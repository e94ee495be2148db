"""Bijectors: invertible maps with log-determinants, one contract, direction data -> latent.

``forward(x, context=None) -> (z, log|det dz/dx|)`` and ``inverse(z, context=None) -> (x, log|det dx/dz|)``,
log-dets of shape (B,). See :mod:`deepgen.bijectors.base` for the contract, :class:`Compose` and
:class:`Inverse`; :mod:`~deepgen.bijectors.elementwise` and :mod:`~deepgen.bijectors.permutations` for
the reference layers; :class:`StandardNormal` for the base distribution of flows; and
:func:`~deepgen.bijectors.testing.check_bijector` to check a new layer.

The layers of the lectures' table and the review's flows, one module per kind:

* couplings (NICE, RealNVP, Glow, NSF): :mod:`~deepgen.bijectors.coupling`, with the elementwise
  laws of :mod:`~deepgen.bijectors.transforms` and :mod:`~deepgen.bijectors.splines`;
* masked autoregressive layers (MAF, IAF, NSF-AR): :mod:`~deepgen.bijectors.autoregressive`;
* invertible linear maps and 1x1 convolutions (Glow): :mod:`~deepgen.bijectors.linear`;
  emerging k x k convolutions: :mod:`~deepgen.bijectors.emerging`;
* actnorm and batch-norm flows: :mod:`~deepgen.bijectors.normalization`;
* planar and radial flows: :mod:`~deepgen.bijectors.planar`; invertible residual blocks
  (i-ResNet, Residual Flows): :mod:`~deepgen.bijectors.residual`;
* continuous flows (FFJORD): :mod:`~deepgen.bijectors.cnf`;
* squeeze and factor-out of multiscale image flows: :mod:`~deepgen.bijectors.reshape`.
"""

from deepgen.bijectors.autoregressive import (
    InverseAutoregressive,
    MaskedAffineAutoregressive,
    MaskedAutoregressive,
    MaskedSplineAutoregressive,
)
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
from deepgen.bijectors.cnf import ConcatSquashLinear, ContinuousFlow, ODENet
from deepgen.bijectors.coupling import AdditiveCoupling, AffineCoupling, ConvResNet, Coupling
from deepgen.bijectors.distributions import StandardNormal
from deepgen.bijectors.elementwise import Affine, ConditionalAffine, Logit, Rescale, Sigmoid, Tanh
from deepgen.bijectors.emerging import EmergingConv
from deepgen.bijectors.linear import Conv1x1, InvertibleLinear, InvertibleMatrix, random_rotation
from deepgen.bijectors.normalization import ActNorm, BatchNormFlow
from deepgen.bijectors.permutations import Permute, RandomPermutation, Reverse
from deepgen.bijectors.planar import Planar, Radial
from deepgen.bijectors.reshape import Factor, Squeeze
from deepgen.bijectors.residual import (
    LipSwish,
    ResidualBlock,
    SpectralNormConv2d,
    SpectralNormLinear,
    converge_spectral_norms,
    lipschitz_convnet,
    lipschitz_mlp,
    set_log_det_mode,
)
from deepgen.bijectors.splines import RQSplineTransform, rational_quadratic_spline
from deepgen.bijectors.transforms import AdditiveTransform, AffineTransform, ElementwiseTransform, context_vector

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
    "ActNorm",
    "AdditiveCoupling",
    "AdditiveTransform",
    "AffineCoupling",
    "AffineTransform",
    "BatchNormFlow",
    "ConcatSquashLinear",
    "ContinuousFlow",
    "Conv1x1",
    "ConvResNet",
    "Coupling",
    "ElementwiseTransform",
    "EmergingConv",
    "Factor",
    "InverseAutoregressive",
    "InvertibleLinear",
    "InvertibleMatrix",
    "MaskedAffineAutoregressive",
    "MaskedAutoregressive",
    "MaskedSplineAutoregressive",
    "ODENet",
    "RQSplineTransform",
    "Squeeze",
    "context_vector",
    "rational_quadratic_spline",
    "random_rotation",
    "Planar",
    "Radial",
    "LipSwish",
    "ResidualBlock",
    "SpectralNormConv2d",
    "SpectralNormLinear",
    "converge_spectral_norms",
    "lipschitz_convnet",
    "lipschitz_mlp",
    "set_log_det_mode",
]
