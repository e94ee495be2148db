"""Kernel Inception Distance (Binkowski et al., 2018, arXiv:1801.01401).

KID is the squared maximum mean discrepancy with the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3, estimated without bias on random subsets of both feature sets; we report
the mean and standard deviation over subsets. Unlike FID it is unbiased, so small sample sets
(e.g. the 360 digits test images) compare fairly.
"""

from __future__ import annotations

import torch


def polynomial_kernel(
    x: torch.Tensor, y: torch.Tensor, degree: int = 3, gamma: float | None = None, coef: float = 1.0
) -> torch.Tensor:
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (gamma * x @ y.T + coef) ** degree


def mmd2_unbiased(kxx: torch.Tensor, kyy: torch.Tensor, kxy: torch.Tensor) -> float:
    """Unbiased MMD^2 from kernel matrices (m x m, n x n, m x n)."""
    m, n = kxx.shape[0], kyy.shape[0]
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return (sxx + syy - 2 * kxy.mean()).item()


def kernel_inception_distance(
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    n_subsets: int = 100,
    subset_size: int = 1000,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """KID between feature sets (N, d) and (M, d): ``(mean, std)`` over ``n_subsets`` subsets.

    ``subset_size`` is capped at the smaller set's size. Computed in float64.
    """
    real, fake = real.double().flatten(1), fake.double().flatten(1)
    m = min(subset_size, len(real), len(fake))
    if m < 2:
        raise ValueError("KID needs at least 2 examples in each set")
    g = generator or torch.Generator().manual_seed(0)
    vals = []
    for _ in range(n_subsets):
        r = real[torch.randperm(len(real), generator=g)[:m]]
        f = fake[torch.randperm(len(fake), generator=g)[:m]]
        vals.append(mmd2_unbiased(polynomial_kernel(r, r), polynomial_kernel(f, f), polynomial_kernel(r, f)))
    t = torch.tensor(vals, dtype=torch.float64)
    return t.mean().item(), (t.std().item() if len(vals) > 1 else 0.0)


def gaussian_mmd2(x: torch.Tensor, y: torch.Tensor, bandwidths: tuple[float, ...] | None = None) -> float:
    """Unbiased MMD^2 with a sum of Gaussian kernels (default bandwidths: median distance x {0.5, 1, 2}).

    Used for low-dimensional data such as the 2D toys, where no feature network is needed.
    """
    x, y = x.double().flatten(1), y.double().flatten(1)
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).pow(2)
    if bandwidths is None:
        med = d2[d2 > 0].median().sqrt().item()
        bandwidths = (0.5 * med, med, 2 * med)
    k = sum(torch.exp(-d2 / (2 * h * h)) for h in bandwidths)
    m = len(x)
    return mmd2_unbiased(k[:m, :m], k[m:, m:], k[:m, m:])
