"""Emerging convolutions: invertible k x k convolutions of images from two autoregressive convolutions.

Hoogeboom, van den Berg & Welling, "Emerging Convolutions for Generative Normalizing Flows" (ICML
2019, arXiv:1901.11137), section 3.1. A masked convolution whose output at a pixel depends only on
inputs earlier in raster order, and at the pixel itself on channels up to its own, has a lower
triangular Jacobian (in raster x channel order) whose diagonal is the centre tap's diagonal: its
log-determinant is cheap and it is inverted by substitution. Chaining it with a second one in the
opposite order (the mask flipped) gives a convolution with a full, symmetric receptive field:

>>> f = EmergingConv(2, kernel_size=3)
>>> z, ld = f(torch.randn(5, 2, 6, 6))
>>> x, _ = f.inverse(z)
>>> z.shape, ld.shape
(torch.Size([5, 2, 6, 6]), torch.Size([5]))
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.bijectors.base import Bijector


class EmergingConv(Bijector):
    """Invertible ``kernel_size`` x ``kernel_size`` convolution of images (B, C, H, W) -> (B, C, H, W).

    Hoogeboom, van den Berg & Welling (2019, arXiv:1901.11137), section 3.1 (emerging convolutions,
    the k = k2 * k1 chain of two autoregressive convolutions). With ``m = (kernel_size + 1) // 2``:

    * factor 1, ``y = K1 * x``: an m x m convolution over the taps up and left of the pixel, offsets
      ``(di, dj)`` in ``[-(m-1), 0]^2`` (raster-earlier pixels) and, at the centre tap ``(0, 0)``,
      a lower triangular channel matrix (output channel ``o`` reads input channels ``c <= o``);
    * factor 2, ``z = K2 * y``: the same with the mask flipped (offsets in ``[0, m-1]^2``, upper
      triangular centre), i.e. the opposite (reverse raster, reverse channel) order.

    Each factor's Jacobian is triangular in raster x channel order (pixel-major, channel-minor) with
    the centre tap's diagonal on its diagonal, parametrised as ``exp(log_diag)`` (non-zero, so the
    factor is invertible; its determinant is positive). Zero padding, stride 1, so the shape is kept,
    and ``log|det dz/dx| = H * W * (sum(log_diag1) + sum(log_diag2))`` per example. The composed
    convolution reads the full ``kernel_size`` x ``kernel_size`` neighbourhood (``kernel_size`` odd;
    1 gives an LU-factored 1x1 convolution). Parameters: ``weight1``, ``weight2`` (C, C, m, m; the
    masked entries and the centre diagonal are unused), ``log_diag1``, ``log_diag2`` (C,);
    initialisation: small seeded Gaussian weights (std ``0.1 / sqrt(C m^2)``) and unit diagonals.

    This layer does not include the 1x1 convolution that the paper's flows also use; compose one
    (``Compose(Conv1x1(C), EmergingConv(C))``) for learned channel mixing with either determinant sign.

    ``inverse`` solves factor 2 then factor 1 exactly, row by row of the image: each row is a triangular
    solve against the (W C x W C) matrix of the centre kernel row, after subtracting what the already
    solved neighbouring rows contribute (H sequential steps, memory O((W C)^2)). These row matrices are
    built from the kernels by convolving an identity basis; in eval mode without gradients to the
    parameters they are cached, and rebuilt when a parameter changes (version counter), the width, the
    dtype or the device does. Direction: ``forward`` data -> latent, ``inverse`` latent -> data.

    >>> f = EmergingConv(4, kernel_size=3, seed=1).eval()
    >>> x = torch.randn(2, 4, 7, 7)
    >>> torch.allclose(f.inverse(f(x)[0])[0], x, atol=1e-5)
    True
    """

    def __init__(self, channels: int, kernel_size: int = 3, *, seed: int = 0):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"EmergingConv: kernel_size must be a positive odd integer, got {kernel_size}")
        if channels < 1:
            raise ValueError(f"EmergingConv: channels must be positive, got {channels}")
        self.channels, self.kernel_size = int(channels), int(kernel_size)
        c, m = self.channels, (self.kernel_size + 1) // 2
        self.m = m
        g = torch.Generator().manual_seed(seed)
        std = 0.1 / math.sqrt(c * m * m)
        dtype = torch.get_default_dtype()
        self.weight1 = nn.Parameter((torch.randn(c, c, m, m, generator=g, dtype=torch.float64) * std).to(dtype))
        self.weight2 = nn.Parameter((torch.randn(c, c, m, m, generator=g, dtype=torch.float64) * std).to(dtype))
        self.log_diag1 = nn.Parameter(torch.zeros(c))
        self.log_diag2 = nn.Parameter(torch.zeros(c))
        # factor 1: every tap of the up-left m x m block; at the centre (m-1, m-1) only channels c < o
        mask = torch.ones(c, c, m, m)
        mask[:, :, m - 1, m - 1] = torch.tril(torch.ones(c, c), -1)
        centre = torch.zeros(m, m)
        centre[m - 1, m - 1] = 1.0
        # factor 2: the mask flipped in every axis (output and input channels, rows, columns)
        self.register_buffer("mask1", mask, persistent=False)
        self.register_buffer("mask2", mask.flip(0, 1, 2, 3), persistent=False)
        self.register_buffer("centre1", centre, persistent=False)
        self.register_buffer("centre2", centre.flip(0, 1), persistent=False)
        self._cache: tuple | None = None

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}"

    def kernels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The masked kernels ``(K1, K2)``, each (C, C, m, m), with their centre diagonals ``exp(log_diag)``."""
        k1 = self.weight1 * self.mask1 + torch.diag(torch.exp(self.log_diag1))[:, :, None, None] * self.centre1
        k2 = self.weight2 * self.mask2 + torch.diag(torch.exp(self.log_diag2))[:, :, None, None] * self.centre2
        return k1, k2

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"EmergingConv: expected (B, {self.channels}, H, W) images, got {tuple(x.shape)}")

    def _log_det(self, x: torch.Tensor) -> torch.Tensor:
        return (x.shape[2] * x.shape[3] * (self.log_diag1.sum() + self.log_diag2.sum())).expand(x.shape[0])

    def forward(self, x, context=None):
        self._check(x)
        k1, k2 = self.kernels()
        p = self.m - 1
        y = F.conv2d(F.pad(x, (p, 0, p, 0)), k1)  # taps up and left: raster order
        z = F.conv2d(F.pad(y, (0, p, 0, p)), k2)  # taps down and right: reverse raster order
        return z, self._log_det(x)

    # ---- inverse -------------------------------------------------------------------------------------------------

    def _row_matrices(self, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per factor, (m, W C, W C): ``[a]`` maps an input row (pixel-major, channel-minor) to its
        contribution to the output row ``a - (m - 1)`` (factor 1) or ``a`` (factor 2) rows above it,
        as a right multiplication: ``out_row += in_row @ M[a]``."""
        c, m, p = self.channels, self.m, self.m - 1
        n = width * c
        k1, k2 = self.kernels()
        basis = torch.eye(n, dtype=k1.dtype, device=k1.device).reshape(n, width, c).permute(0, 2, 1)
        out = []
        for k, pad in ((k1, (p, 0)), (k2, (0, p))):
            rows = k.permute(2, 0, 1, 3).reshape(m * c, c, m)  # kernel row a -> output channels a*C..(a+1)*C
            r = F.conv1d(F.pad(basis, pad), rows)  # (n, m*C, W): response of each basis row
            out.append(r.reshape(n, m, c, width).permute(1, 0, 3, 2).reshape(m, n, n))
        return out[0], out[1]

    def _cached_row_matrices(self, width: int, dtype: torch.dtype, device: torch.device):
        params = list(self.parameters())
        needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in params)
        if self.training or needs_grad:
            self._cache = None
            return self._row_matrices(width)
        key = (width, dtype, device, tuple((p.data_ptr(), p._version) for p in params))
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, self._row_matrices(width))
        return self._cache[1]

    def inverse(self, z, context=None):
        self._check(z)
        b, c, h, w = z.shape
        m1, m2 = self._cached_row_matrices(w, z.dtype, z.device)
        m = self.m
        rows = z.permute(0, 2, 3, 1).reshape(b, h, w * c)
        # factor 2 (upper triangular): solve the rows bottom to top
        y: list[torch.Tensor | None] = [None] * h
        for i in reversed(range(h)):
            r = rows[:, i]
            for a in range(1, m):
                if i + a < h:
                    r = r - y[i + a] @ m2[a]
            y[i] = torch.linalg.solve_triangular(m2[0], r, upper=False, left=False)
        # factor 1 (lower triangular): top to bottom
        x: list[torch.Tensor | None] = [None] * h
        for i in range(h):
            r = y[i]
            for a in range(m - 1):
                src = i + a - (m - 1)
                if src >= 0:
                    r = r - x[src] @ m1[a]
            x[i] = torch.linalg.solve_triangular(m1[m - 1], r, upper=True, left=False)
        out = torch.stack(x, 1).reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()
        return out, -self._log_det(z)
