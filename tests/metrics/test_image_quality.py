"""PSNR and SSIM against their formulas and an independent numpy SSIM."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepgen.metrics.image_quality import gaussian_window, mean_psnr_db, psnr, ssim


def test_psnr_matches_its_formula():
    x = torch.rand(3, 2, 5, 7, generator=torch.Generator().manual_seed(0))
    y = x + 0.1  # MSE 0.01 exactly: 20 dB at range 1, 20 + 20 log10(255) at range 255
    assert torch.allclose(psnr(x, y), torch.full((3,), 20.0, dtype=torch.float64))
    assert torch.allclose(psnr(255 * x, 255 * y, data_range=255.0), torch.full((3,), 20.0, dtype=torch.float64))
    assert psnr(x, x).isinf().all()
    assert mean_psnr_db(x, y) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="one shape"):
        psnr(x, y[:, :1])


def _ssim_numpy(x: np.ndarray, y: np.ndarray, L: float = 1.0) -> float:
    """Wang et al. (2004) written out independently: weighted moments window by window, 'valid' positions."""
    t = np.arange(11) - 5.0
    g = np.exp(-(t**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    vals = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            a, b = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            ma, mb = (w * a).sum(), (w * b).sum()
            va, vb = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum()
            cov = (w * (a - ma) * (b - mb)).sum()
            vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_agrees_with_an_independent_numpy_version():
    rng = np.random.default_rng(0)
    x = rng.random((14, 13))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    got = ssim(torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None]).item()
    assert got == pytest.approx(_ssim_numpy(x, y), abs=1e-10)
    assert 0.5 < got < 0.99


def test_ssim_properties():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 16, 16, generator=g)
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))
    noisy = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    s = ssim(x, noisy)
    assert (s < 0.9).all() and torch.allclose(s, ssim(noisy, x))  # symmetric
    assert (ssim(x, (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)) > s).all()  # less noise: higher
    # a constant offset changes only the luminance term: l = (2 mu (mu + c) + C1) / (mu^2 + (mu + c)^2 + C1)
    flat = torch.full((1, 1, 11, 11), 0.3, dtype=torch.float64)
    c1 = 0.01**2
    expected = (2 * 0.3 * 0.5 + c1) / (0.3**2 + 0.5**2 + c1)
    assert ssim(flat, flat + 0.2).item() == pytest.approx(expected, rel=1e-12)
    assert gaussian_window().sum().item() == pytest.approx(1.0) and math.isclose(
        gaussian_window()[5].item() / gaussian_window()[6].item(), math.exp(1 / (2 * 1.5**2))
    )
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
