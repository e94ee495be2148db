"""Coupling layers: half of the entries pass unchanged and parametrise a transform of the other half.

Dinh, Krueger & Bengio, "NICE" (2015, arXiv:1410.8516, eq. 5-7) and Dinh, Sohl-Dickstein & Bengio,
"Density estimation using Real NVP" (2017, arXiv:1605.08803, eq. 4-9). A binary mask splits an
example into an identity part ``x_a`` and a transformed part ``x_b``::

    z_a = x_a,    z_b = T(x_b; theta),    theta = NN(x_a, context)

The Jacobian is block-triangular, so ``log|det dz/dx| = sum_b log|T'(x_b)|``, and the inverse needs
one network pass: ``x_b = T^{-1}(z_b; NN(z_a))``. ``T`` is any
:class:`~deepgen.bijectors.transforms.ElementwiseTransform`: additive (NICE), affine (RealNVP,
Glow) or a rational-quadratic spline (NSF, Durkan et al. 2019, arXiv:1906.04032). The network ``NN``
need not be invertible; it is zero-initialised at the output, so each layer starts as the identity.

Masks (``mask=``):

* vectors ``(B, D)``: ``"half"`` (the first ``ceil(D/2)`` entries condition, or with ``parity=1``
  the other ``floor(D/2)``) or ``"alternate"`` (even or odd indices);
* images ``(B, C, H, W)``: ``"checkerboard"`` (pixels with ``(i + j + parity)`` even condition;
  RealNVP's spatial mask) or ``"channel"`` (the first ``ceil(C/2)`` channels, or with ``parity=1``
  the other ``floor(C/2)``; RealNVP after a squeeze, and Glow).

Each mask with ``parity=1`` is the complement of its ``parity=0``: alternate ``parity`` between
consecutive layers and every entry is transformed, for odd sizes too.

>>> from deepgen.bijectors.transforms import AffineTransform
>>> c = Coupling((4,), AffineTransform(), hidden=(16,), zero_init=False)
>>> z, ld = c(torch.randn(8, 4))
>>> bool((z[:, :2] == c.inverse(z)[0][:, :2]).all())  # the conditioning half passes unchanged
True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deepgen.bijectors.base import Bijector, sum_except_batch
from deepgen.bijectors.transforms import (
    AdditiveTransform,
    AffineTransform,
    ElementwiseTransform,
    context_vector,
)
from deepgen.nn.mlp import MLP, activation

VECTOR_MASKS = ("half", "alternate")
IMAGE_MASKS = ("checkerboard", "channel")


class ConvResNet(nn.Module):
    """The image conditioner of RealNVP/Glow couplings: conv 3x3, residual blocks, conv 3x3 out.

    ``(B, in_channels, H, W) -> (B, out_channels, H, W)``. Each block is ``h + conv3(act(conv3(act(h))))``
    (pre-activation, He et al. 2016); no normalisation, so an example's parameters never depend on
    the rest of the batch (batch statistics would make the coupling a different map per batch).
    The output convolution is zero-initialised when ``zero_init`` (the coupling starts as the identity).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden: int = 64,
        blocks: int = 2,
        *,
        act: str = "relu",
        zero_init: bool = True,
    ):
        super().__init__()
        self.inp = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                activation(act),
                nn.Conv2d(hidden, hidden, 3, padding=1),
                activation(act),
                nn.Conv2d(hidden, hidden, 3, padding=1),
            )
            for _ in range(blocks)
        )
        self.act = activation(act)
        self.out = nn.Conv2d(hidden, out_channels, 3, padding=1)
        if zero_init:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(self.act(h))


class Coupling(Bijector):
    """A coupling layer with elementwise transform ``transform`` (see the module docstring).

    Args:
        shape: one example's shape, ``(D,)`` or ``(C, H, W)``.
        transform: the elementwise law applied to the transformed half.
        mask: ``"half"``/``"alternate"`` for vectors, ``"checkerboard"``/``"channel"`` for images;
            default ``"half"`` for vectors, ``"checkerboard"`` for images.
        parity: 0 or 1, which half conditions; alternate it between layers.
        hidden: MLP hidden sizes (vectors); for images, ``hidden[0]`` channels in the
            :class:`ConvResNet` with ``blocks`` residual blocks.
        blocks: residual blocks of the image conditioner.
        context_features: classes (for ``(B,)`` label context) or features of a ``(B, F)`` context the
            conditioner sees (concatenated to its input; for images as constant extra channels).
        zero_init: zero the conditioner's output layer, so the layer starts as the identity (for
            transforms that are the identity at zero parameters).
        act: the conditioner's activation.
        net: a custom conditioner; it maps ``(B, n_a [+ F])`` to ``(B, n_b * P)`` for vectors, or
            ``(B, C [+ F], H, W)`` to ``(B, C_b * P, H, W)`` for images (``C_b`` = transformed channels,
            ``C`` for the checkerboard mask), parameter-major.
    """

    def __init__(
        self,
        shape: int | Sequence[int],
        transform: ElementwiseTransform,
        *,
        mask: str | None = None,
        parity: int = 0,
        hidden: Sequence[int] = (64, 64),
        blocks: int = 2,
        context_features: int | None = None,
        zero_init: bool = True,
        act: str = "relu",
        net: nn.Module | None = None,
    ):
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if len(shape) not in (1, 3):
            raise ValueError(f"Coupling acts on vectors (D,) or images (C, H, W), got shape {shape}")
        mask = mask or ("half" if len(shape) == 1 else "checkerboard")
        valid = VECTOR_MASKS if len(shape) == 1 else IMAGE_MASKS
        if mask not in valid:
            raise ValueError(f"mask {mask!r} does not apply to shape {shape}; use one of {valid}")
        if parity not in (0, 1):
            raise ValueError(f"parity must be 0 or 1, got {parity}")
        self.shape, self.mask_kind, self.parity = shape, mask, parity
        self.transform = transform
        self.context_features = context_features
        p, f = transform.num_params, context_features or 0
        if len(shape) == 1:
            d = shape[0]
            idx = torch.arange(d)
            if mask == "half":
                # parity 1 conditions on what parity 0 transforms (for odd D too: every entry is transformed)
                cond = idx < (d + 1) // 2 if parity == 0 else idx >= (d + 1) // 2
            else:
                cond = idx % 2 == parity
            if cond.all() or not cond.any():
                raise ValueError(f"Coupling needs at least 2 features to split, got D = {d}")
            self.register_buffer("cond_idx", idx[cond], persistent=False)
            self.register_buffer("trans_idx", idx[~cond], persistent=False)
            n_a, n_b = int(cond.sum()), int((~cond).sum())
            if net is None:
                net = MLP(n_a + f, n_b * p, tuple(hidden), act, zero_last=zero_init)
            self.net = net
        else:
            c, h, w = shape
            if mask == "checkerboard":
                ii, jj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
                self.register_buffer("cond_mask", ((ii + jj + parity) % 2 == 0).expand(1, c, h, w), persistent=False)
                c_in, c_out = c, c
            else:
                if c < 2:
                    raise ValueError(f"a channel mask needs at least 2 channels, got {c}; squeeze first")
                n_first = (c + 1) // 2  # parity 0 conditions on these, parity 1 transforms them
                self.split = (n_first, c - n_first)
                c_in, c_out = (n_first, c - n_first) if parity == 0 else (c - n_first, n_first)
            self.c_out = c_out
            if net is None:
                net = ConvResNet(c_in + f, c_out * p, hidden[0], blocks, act=act, zero_init=zero_init)
            self.net = net

    def extra_repr(self) -> str:
        return f"shape={self.shape}, mask={self.mask_kind!r}, parity={self.parity}"

    # -- the conditioner -------------------------------------------------------------------------
    def _params(self, x_a: torch.Tensor, context, n_b_shape: tuple[int, ...]) -> torch.Tensor:
        ctx = None
        if self.context_features:
            if context is None:
                raise ValueError(f"{type(self).__name__} was built with context_features: pass context")
            ctx = context_vector(context, self.context_features, x_a)
        if len(self.shape) == 1:
            inp = x_a if ctx is None else torch.cat([x_a, ctx], 1)
            out = self.net(inp)  # (B, n_b * P), parameter-major
            return out.view(len(x_a), self.transform.num_params, *n_b_shape).movedim(1, -1)
        if ctx is not None:
            ctx = ctx[:, :, None, None].expand(-1, -1, *x_a.shape[2:])
            x_a = torch.cat([x_a, ctx], 1)
        out = self.net(x_a)  # (B, C_b * P, H, W), parameter-major
        b, _, h, w = out.shape
        return out.view(b, self.transform.num_params, self.c_out, h, w).movedim(1, -1)

    def _split(self, x: torch.Tensor):
        if self.mask_kind == "channel":
            a, b = x.split(self.split, 1)
            return (a, b) if self.parity == 0 else (b, a)
        if self.mask_kind == "half":
            n_a = len(self.cond_idx)
            return (x[:, :n_a], x[:, n_a:]) if self.parity == 0 else (x[:, -n_a:], x[:, :-n_a])
        return x[:, self.cond_idx], x[:, self.trans_idx]

    def _merge(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.mask_kind == "channel":
            return torch.cat([a, b] if self.parity == 0 else [b, a], 1)
        if self.mask_kind == "half":
            return torch.cat([a, b] if self.parity == 0 else [b, a], 1)
        out = a.new_empty(a.shape[0], a.shape[1] + b.shape[1])
        out[:, self.cond_idx] = a
        out[:, self.trans_idx] = b
        return out

    def _couple(self, x: torch.Tensor, context, inverse: bool):
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"{type(self).__name__} expects examples of shape {self.shape}, got {tuple(x.shape[1:])}")
        law = self.transform.inverse if inverse else self.transform.forward
        if self.mask_kind == "checkerboard":
            m = self.cond_mask
            # the law runs on every entry; at the conditioning ones with zero parameters, so that a
            # parameter there that overflows (scale="exp") cannot send NaN through the discarded output
            params = self._params(x * m, context, ()).masked_fill(m[..., None], 0.0)
            y, ld = law(x, params)
            out = torch.where(m, x, y)
            return out, sum_except_batch(torch.where(m, torch.zeros_like(ld), ld))
        a, b = self._split(x)
        params = self._params(a, context, tuple(b.shape[1:]))
        y, ld = law(b, params)
        return self._merge(a, y), sum_except_batch(ld)

    def forward(self, x, context=None):
        return self._couple(x, context, inverse=False)

    def inverse(self, z, context=None):
        return self._couple(z, context, inverse=True)


class AdditiveCoupling(Coupling):
    """NICE's additive coupling ``z_b = x_b + m(x_a)`` (Dinh et al. 2015, arXiv:1410.8516, eq. 5): log-det 0.

    Volume-preserving; NICE puts a diagonal scaling (:class:`~deepgen.bijectors.Affine`) after the
    last coupling so the flow can change volume at all. Arguments as :class:`Coupling`.
    """

    def __init__(self, shape, **kwargs):
        super().__init__(shape, AdditiveTransform(), **kwargs)


class AffineCoupling(Coupling):
    """RealNVP's affine coupling ``z_b = x_b * exp(s(x_a)) + t(x_a)`` (Dinh et al. 2017, arXiv:1605.08803, eq. 7).

    ``scale`` is :class:`~deepgen.bijectors.transforms.AffineTransform`'s: ``"softclamp"`` (default,
    ``s`` bounded by ``clamp``), ``"exp"`` (the paper's unbounded form) or ``"sigmoid"`` (Glow's).
    Other arguments as :class:`Coupling`.
    """

    def __init__(self, shape, *, scale: str = "softclamp", clamp: float = 3.0, **kwargs):
        super().__init__(shape, AffineTransform(scale, clamp), **kwargs)
