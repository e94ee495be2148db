"""Full-reference image quality for signals and scenes: PSNR (dB) and SSIM (unitless, at most 1).

Both compare a reconstruction with its ground truth, image by image, on ``(B, C, H, W)`` tensors whose
values span ``data_range`` (1.0 for deepgen's signals and scenes, whose values lie in [0, 1]; 255 for
8-bit pixels). Computation is in float64; results are float64 tensors of shape ``(B,)``.

>>> x = torch.rand(2, 3, 16, 16)
>>> psnr(x, x.clamp(0, 0.9)).shape, float(ssim(x, x)[0])
(torch.Size([2]), 1.0)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _check(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in decibels, per image: ``10 log10(data_range^2 / MSE)``, shape ``(B,)``.

    ``data_range``: the span of the values (max - min possible), 1.0 for values in [0, 1]. Identical
    images give ``+inf``.
    """
    _check(x, y)
    return psnr_from_mse((x.double() - y.double()).pow(2).flatten(1).mean(1), data_range)


def psnr_from_mse(mse: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """``10 log10(data_range^2 / MSE)`` for mean squared errors already taken (e.g. over part of an
    image, as inpainting's unobserved pixels); a zero error gives ``+inf``."""
    return 10 * torch.log10(data_range**2 / mse)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps (float64); SSIM filters with its outer product."""
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    window: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Structural similarity (Wang, Bovik, Sheikh & Simoncelli, 2004, IEEE TIP 13(4)), per image ``(B,)``.

    The reference definition: local means, variances and covariance under an 11 x 11 Gaussian window
    (sigma 1.5), ``C1 = (K1 L)^2``, ``C2 = (K2 L)^2`` with ``K1 = 0.01``, ``K2 = 0.03`` and ``L = data_range``,

        SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)),

    averaged over the positions where the window fits entirely (``'valid'``, as Wang's ``ssim_index.m``)
    and over channels. Variances use the window's weights (no Bessel correction). Images must be at
    least ``window`` pixels on each side.
    """
    _check(x, y)
    if min(x.shape[-2:]) < window:
        raise ValueError(f"SSIM needs images of at least {window} x {window} pixels, got {tuple(x.shape[-2:])}")
    b, c = x.shape[:2]
    g = gaussian_window(window, sigma).to(x.device)
    w = (g[:, None] * g[None, :]).expand(c, 1, window, window)
    x, y = x.double(), y.double()

    def filt(t):
        return F.conv2d(t, w, groups=c)

    mx, my = filt(x), filt(y)
    vx, vy, cxy = filt(x * x) - mx * mx, filt(y * y) - my * my, filt(x * y) - mx * my
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.reshape(b, -1).mean(1)


def mean_psnr_db(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> float:
    """PSNR of the pooled mean squared error over a whole set (dB): robust to one perfect image (no ``inf``)."""
    _check(x, y)
    mse = float((x.double() - y.double()).pow(2).mean())
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)
