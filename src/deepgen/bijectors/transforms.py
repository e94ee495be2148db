"""Elementwise transforms with external parameters: what couplings and autoregressive layers apply.

A coupling layer (NICE, RealNVP, Glow, NSF) and a masked autoregressive layer (MAF, IAF) both transform
each entry ``x_i`` by a monotone scalar map whose parameters a conditioner network computes from
*other* entries. The map is an :class:`ElementwiseTransform`; the layer decides where its parameters
come from. One contract, direction data -> latent like every bijector:

* ``num_params``: parameters per transformed entry, P;
* ``forward(x, params) -> (z, log|dz/dx|)``, ``inverse(z, params) -> (x, log|dx/dz|)``, where
  ``params`` has shape ``(*x.shape, P)`` and the log-derivatives are elementwise (shape of ``x``):
  the layer sums them over the entries it transformed.

All-zero parameters are the identity map for :class:`AdditiveTransform`, :class:`AffineTransform`
(``scale="softclamp"`` or ``"exp"``) and the rational-quadratic spline, so a conditioner whose last
layer is initialised to zero starts the flow at the identity (RealNVP and Glow do this).

>>> t = AffineTransform()
>>> x = torch.randn(4, 3)
>>> z, ld = t(x, torch.zeros(4, 3, 2))  # zero parameters: the identity
>>> bool((z == x).all()), bool((ld == 0).all())
(True, True)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ElementwiseTransform(nn.Module):
    """A monotone scalar map applied entry by entry with given parameters (see the module docstring)."""

    #: parameters per transformed entry
    num_params: int = 0

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, log|dz/dx|)``, both of ``x``'s shape; ``params`` is ``(*x.shape, num_params)``."""
        raise NotImplementedError

    def inverse(self, z: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, log|dx/dz|)``, both of ``z``'s shape."""
        raise NotImplementedError


class AdditiveTransform(ElementwiseTransform):
    """``z = x + t``: NICE's additive coupling law (Dinh et al. 2015, arXiv:1410.8516); volume-preserving."""

    num_params = 1

    def forward(self, x, params):
        return x + params[..., 0], torch.zeros_like(x)

    def inverse(self, z, params):
        return z - params[..., 0], torch.zeros_like(z)


class AffineTransform(ElementwiseTransform):
    """``z = x * exp(s) + t``: RealNVP's affine coupling law (Dinh et al. 2017, arXiv:1605.08803, eq. 7).

    ``params[..., 0]`` is the raw log-scale, ``params[..., 1]`` the shift ``t``. How the raw value
    becomes the log-scale ``s``:

    * ``"softclamp"`` (default): ``s = c * tanh(raw / c)`` with ``c = clamp``. Equal to ``raw`` near
      0 and bounded by ``c``, so one bad batch cannot send ``exp(s)`` to infinity (the NaNs that flow
      users report); RealNVP bounds its scale with a ``tanh`` too.
    * ``"exp"``: ``s = raw``, unbounded, as in the paper's equation.
    * ``"sigmoid"``: ``exp(s) = sigmoid(raw + 2)``, Glow's choice (Kingma & Dhariwal 2018,
      arXiv:1807.03039, official code): a scale in (0, 1) that starts near 0.88; not the identity
      at zero parameters.
    """

    num_params = 2

    def __init__(self, scale: str = "softclamp", clamp: float = 3.0):
        super().__init__()
        if scale not in ("softclamp", "exp", "sigmoid"):
            raise ValueError(f"AffineTransform scale must be softclamp, exp or sigmoid, got {scale!r}")
        if clamp <= 0:
            raise ValueError(f"AffineTransform clamp must be positive, got {clamp}")
        self.scale, self.clamp = scale, float(clamp)

    def extra_repr(self) -> str:
        return f"scale={self.scale!r}" + (f", clamp={self.clamp}" if self.scale == "softclamp" else "")

    def log_scale(self, raw: torch.Tensor) -> torch.Tensor:
        """The log-scale ``s`` from the raw parameter (see the class docstring)."""
        if self.scale == "softclamp":
            return self.clamp * torch.tanh(raw / self.clamp)
        if self.scale == "sigmoid":
            return F.logsigmoid(raw + 2.0)
        return raw

    def forward(self, x, params):
        s = self.log_scale(params[..., 0])
        return torch.addcmul(params[..., 1], x, torch.exp(s)), s  # x * exp(s) + t in one kernel

    def inverse(self, z, params):
        s = self.log_scale(params[..., 0])
        return (z - params[..., 1]) * torch.exp(-s), -s


def context_vector(context: torch.Tensor | None, features: int, like: torch.Tensor) -> torch.Tensor | None:
    """A conditioner's context as a float ``(B, features)`` tensor in ``like``'s dtype and device.

    Conditional layers accept either ``(B,)`` integer class labels (one-hot encoded here, so
    ``features`` is the number of classes) or ``(B, features)`` floats (an embedding the model
    computed). ``None`` stays ``None`` (unconditional use of a layer built without context raises in
    the layer itself).

    >>> context_vector(torch.tensor([0, 2]), 3, torch.zeros(1))
    tensor([[1., 0., 0.],
            [0., 0., 1.]])
    """
    if context is None:
        return None
    if not context.is_floating_point():
        if context.dim() != 1:
            raise ValueError(f"integer context must be (B,) class labels, got shape {tuple(context.shape)}")
        return F.one_hot(context.long(), features).to(dtype=like.dtype, device=like.device)
    if context.dim() != 2 or context.shape[1] != features:
        raise ValueError(f"float context must have shape (B, {features}), got {tuple(context.shape)}")
    return context.to(dtype=like.dtype, device=like.device)
