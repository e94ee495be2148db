"""Learned invertible linear maps: :class:`InvertibleLinear` for vectors, :class:`Conv1x1` for images.

Both hold an :class:`InvertibleMatrix` ``W`` (D x D), initialised to a random rotation (the Q factor of
the QR decomposition of a seeded Gaussian matrix, so the layer starts volume-preserving), and either
stored as a free matrix (log-det by ``torch.linalg.slogdet``, O(D^3)) or in Glow's LU form
``W = P L (U + diag(sign(s) exp(log|s|)))`` (log-det ``sum log|s|``, O(D)). Direction data -> latent:
``z = W x`` for each vector (each pixel's channel vector, for :class:`Conv1x1`).

>>> f = InvertibleLinear(3, seed=1)
>>> z, ld = f(torch.randn(4, 3))  # a rotation at initialisation: ld == 0
>>> x, _ = f.inverse(z)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.bijectors.base import Bijector


def random_rotation(n: int, seed: int = 0) -> torch.Tensor:
    """A seeded (n, n) orthogonal matrix in float64: ``Q`` of the QR decomposition of a Gaussian matrix.

    The columns are signed so that ``R`` has a positive diagonal, which makes ``Q`` Haar-distributed
    and a function of ``seed`` alone. ``det Q`` is +1 or -1.

    >>> q = random_rotation(3, seed=0)
    >>> torch.allclose(q @ q.T, torch.eye(3, dtype=torch.float64))
    True
    """
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0)


class InvertibleMatrix(nn.Module):
    """A learnable invertible (n, n) matrix ``W`` with its log|det| and solves: the weight of the linear layers.

    With ``lu=True`` (Kingma & Dhariwal, "Glow", 2018, arXiv:1807.03039, section 3.2, LU decomposition)
    ``W = P L (U + diag(sign_s * exp(log_s)))``: ``P`` a fixed permutation (buffer), ``L`` unit lower
    triangular (parameter ``lower``, strictly-lower part used), ``U`` strictly upper triangular
    (parameter ``upper``, strictly-upper part used), ``log_s`` a parameter and ``sign_s`` a fixed buffer;
    ``log|det W| = sum(log_s)`` and solves are two triangular solves. With ``lu=False`` ``W`` is a free
    parameter ``weight``: ``torch.linalg.slogdet`` and ``torch.linalg.solve``. Either way ``W``
    starts as :func:`random_rotation` ``(n, seed)`` (its LU factors, for ``lu=True``).

    Not a bijector: :class:`InvertibleLinear` and :class:`Conv1x1` apply it to vectors and to the
    channel vector of every pixel.
    """

    def __init__(self, n: int, *, lu: bool = True, seed: int = 0):
        super().__init__()
        if n < 1:
            raise ValueError(f"InvertibleMatrix: size must be positive, got {n}")
        self.n, self.lu = int(n), bool(lu)
        dtype = torch.get_default_dtype()
        q = random_rotation(self.n, seed)
        if self.lu:
            p, lower, upper = torch.linalg.lu(q)
            s = torch.diagonal(upper)
            self.register_buffer("perm", p.to(dtype))
            self.register_buffer("sign_s", torch.sign(s).to(dtype))
            self.lower = nn.Parameter(torch.tril(lower, -1).to(dtype))
            self.upper = nn.Parameter(torch.triu(upper, 1).to(dtype))
            self.log_s = nn.Parameter(torch.log(s.abs()).to(dtype))
        else:
            self.weight = nn.Parameter(q.to(dtype))

    def extra_repr(self) -> str:
        return f"n={self.n}, lu={self.lu}"

    def _factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L, V)`` with ``W = P L V``: L unit lower triangular, V upper triangular with diagonal ``s``."""
        eye = torch.eye(self.n, dtype=self.lower.dtype, device=self.lower.device)
        lower = torch.tril(self.lower, -1) + eye
        v = torch.triu(self.upper, 1) + torch.diag(self.sign_s * torch.exp(self.log_s))
        return lower, v

    def matrix(self) -> torch.Tensor:
        """``W`` (n, n), differentiable in the parameters."""
        if not self.lu:
            return self.weight
        lower, v = self._factors()
        return self.perm @ lower @ v

    def log_abs_det(self) -> torch.Tensor:
        """Scalar ``log|det W|``: ``sum(log_s)`` (LU) or ``slogdet`` (free matrix)."""
        if self.lu:
            return self.log_s.sum()
        return torch.linalg.slogdet(self.weight)[1]

    def solve_rows(self, z: torch.Tensor) -> torch.Tensor:
        """Rows ``x`` (N, n) with ``W x_i = z_i`` for rows ``z`` (N, n): ``x = z W^{-T}``, by solves."""
        if not self.lu:
            return torch.linalg.solve(self.weight, z.T).T
        lower, v = self._factors()
        # x W^T = z with W^T = V^T L^T P^T: x V^T L^T = z P, then two triangular solves from the right
        y = torch.linalg.solve_triangular(lower.T, z @ self.perm, upper=True, left=False, unitriangular=True)
        return torch.linalg.solve_triangular(v.T, y, upper=False, left=False)


class InvertibleLinear(Bijector):
    """Learned invertible linear map of vectors ``z = W x`` (B, D) -> (B, D), log-det ``log|det W|``.

    The vector form of Glow's invertible 1x1 convolution (Kingma & Dhariwal, "Glow: Generative Flow
    with Invertible 1x1 Convolutions", 2018, arXiv:1807.03039, section 3.2): a learned generalisation
    of the fixed permutations between coupling layers. ``W`` is an :class:`InvertibleMatrix`
    (attribute ``matrix``): a random rotation at initialisation (log-det 0), in Glow's LU
    parametrisation for ``lu=True`` (log-det O(D), inverse by triangular solves) or a free matrix
    (``slogdet``, ``torch.linalg.solve``). No bias: follow it with an ``ActNorm``/``Affine`` for one.
    ``inverse`` maps latents ``(B, D)`` back to data, log-det ``-log|det W|``.

    >>> f = InvertibleLinear(4, lu=False, seed=3)
    >>> z, ld = f(torch.randn(2, 4))
    >>> z.shape, ld.shape
    (torch.Size([2, 4]), torch.Size([2]))
    """

    def __init__(self, features: int, *, lu: bool = True, seed: int = 0):
        super().__init__()
        self.features = int(features)
        self.matrix = InvertibleMatrix(self.features, lu=lu, seed=seed)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.features:
            raise ValueError(f"InvertibleLinear: expected (B, {self.features}) vectors, got {tuple(x.shape)}")

    def forward(self, x, context=None):
        self._check(x)
        return x @ self.matrix.matrix().T, self.matrix.log_abs_det().expand(x.shape[0])

    def inverse(self, z, context=None):
        self._check(z)
        return self.matrix.solve_rows(z), -self.matrix.log_abs_det().expand(z.shape[0])


class Conv1x1(Bijector):
    """Glow's invertible 1x1 convolution: ``z[:, :, i, j] = W x[:, :, i, j]`` for images (B, C, H, W).

    Kingma & Dhariwal, "Glow" (2018, arXiv:1807.03039), section 3.2: a learned channel mixing that
    generalises the channel permutation between coupling layers. The same (C, C) matrix acts on every
    pixel, so ``log|det dz/dx| = H * W * log|det W|`` per example. ``W`` is an :class:`InvertibleMatrix`
    built exactly as in :class:`InvertibleLinear` (same ``lu`` and ``seed`` -> same matrix): a random
    rotation at initialisation, LU-parametrised (``lu=True``, log-det O(C)) or free (``slogdet``).
    ``inverse`` solves for every pixel's channel vector; log-det ``-H * W * log|det W|``.

    >>> f = Conv1x1(3)
    >>> z, ld = f(torch.randn(2, 3, 4, 4))
    >>> x, _ = f.inverse(z)
    >>> z.shape, ld.shape
    (torch.Size([2, 3, 4, 4]), torch.Size([2]))
    """

    def __init__(self, channels: int, *, lu: bool = True, seed: int = 0):
        super().__init__()
        self.channels = int(channels)
        self.matrix = InvertibleMatrix(self.channels, lu=lu, seed=seed)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"Conv1x1: expected (B, {self.channels}, H, W) images, got {tuple(x.shape)}")

    def _log_det(self, x: torch.Tensor) -> torch.Tensor:
        return (x.shape[2] * x.shape[3] * self.matrix.log_abs_det()).expand(x.shape[0])

    def forward(self, x, context=None):
        self._check(x)
        w = self.matrix.matrix()
        return F.conv2d(x, w.reshape(self.channels, self.channels, 1, 1)), self._log_det(x)

    def inverse(self, z, context=None):
        self._check(z)
        b, c, h, w = z.shape
        rows = z.permute(0, 2, 3, 1).reshape(-1, c)
        x = self.matrix.solve_rows(rows).reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()
        return x, -self._log_det(z)
