"""Frechet distance between Gaussians fitted to features (FID: Heusel et al., 2017, arXiv:1706.08500).

    FD = ||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

Split into (1) feature extraction (:mod:`deepgen.metrics.features`), (2) statistics
(:class:`GaussianStats`, accumulated in float64, mergeable and reducible across processes) and
(3) the distance (:func:`frechet_distance`). The matrix square root is never formed: since
S_1 S_2 is similar to the symmetric PSD matrix A = S_1^(1/2) S_2 S_1^(1/2),
tr (S_1 S_2)^(1/2) = sum_i sqrt(lambda_i(A)), computed with two symmetric eigendecompositions. That
is exact for PSD inputs, needs no complex arithmetic, and cannot fail on a near-singular covariance
(tiny negative eigenvalues from round-off are clipped to 0).

:func:`fid_bootstrap` adds a bootstrap interval: both feature sets are resampled with replacement
(Efron & Tibshirani, 1993), so the interval reflects that the reference set is a sample too.

The value depends on the feature network: FID proper uses the InceptionV3 pool features with the
standard weights; deepgen reports "FID (deepgen-mnist features)" etc. for its own networks.
"""

from __future__ import annotations

import math

import torch


class GaussianStats:
    """Running first and second moments of feature vectors, in float64.

    >>> _ = torch.manual_seed(0)
    >>> feats_a, feats_b = torch.randn(100, 4), torch.randn(50, 4)
    >>> s = GaussianStats(4).update(feats_a).update(feats_b)  # update returns the stats
    >>> s.n, s.mean.shape, s.cov.shape
    (150, torch.Size([4]), torch.Size([4, 4]))
    >>> torch.allclose(s.mean, torch.cat([feats_a, feats_b]).double().mean(0))  # as if seen at once
    True
    """

    def __init__(self, dim: int):
        self.dim = dim
        self.n = 0
        self.sum = torch.zeros(dim, dtype=torch.float64)
        self.sum_outer = torch.zeros(dim, dim, dtype=torch.float64)

    def update(self, feats: torch.Tensor) -> GaussianStats:
        f = feats.detach().to("cpu", torch.float64).reshape(len(feats), -1)
        if f.shape[1] != self.dim:
            raise ValueError(f"expected {self.dim}-d features, got {f.shape[1]}")
        self.n += len(f)
        self.sum += f.sum(0)
        self.sum_outer += f.T @ f
        return self

    def merge(self, other: GaussianStats) -> GaussianStats:
        self.n += other.n
        self.sum += other.sum
        self.sum_outer += other.sum_outer
        return self

    def all_reduce(self) -> GaussianStats:
        """Sum the statistics over all processes of the default group (no-op when not distributed)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            # nccl reduces CUDA tensors only; gloo reduces CPU tensors
            dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
            parts = [
                torch.tensor([float(self.n)], dtype=torch.float64, device=dev),
                self.sum.to(dev),
                self.sum_outer.to(dev),
            ]
            for t in parts:
                dist.all_reduce(t)
            self.n = int(parts[0].item())
            self.sum, self.sum_outer = parts[1].cpu(), parts[2].cpu()
        return self

    @property
    def mean(self) -> torch.Tensor:
        return self.sum / self.n

    @property
    def cov(self) -> torch.Tensor:
        """Unbiased covariance (divides by n - 1)."""
        if self.n < 2:
            raise ValueError("covariance needs at least 2 feature vectors")
        mu = self.mean
        return (self.sum_outer - self.n * torch.outer(mu, mu)) / (self.n - 1)

    @classmethod
    def of(cls, feats: torch.Tensor) -> GaussianStats:
        return cls(feats.reshape(len(feats), -1).shape[1]).update(feats)


def _sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh((m + m.T) / 2)
    return (v * torch.sqrt(torch.clamp(w, min=0))) @ v.T


def trace_sqrt_product(s1: torch.Tensor, s2: torch.Tensor) -> float:
    """tr((S1 S2)^(1/2)) for symmetric PSD S1, S2, via the eigenvalues of S1^(1/2) S2 S1^(1/2)."""
    r = _sqrt_psd(s1.double())
    a = r @ s2.double() @ r
    w = torch.linalg.eigvalsh((a + a.T) / 2)
    return torch.sqrt(torch.clamp(w, min=0)).sum().item()


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (float64 throughout)."""
    mu1, mu2 = torch.as_tensor(mu1, dtype=torch.float64), torch.as_tensor(mu2, dtype=torch.float64)
    s1, s2 = torch.as_tensor(sigma1, dtype=torch.float64), torch.as_tensor(sigma2, dtype=torch.float64)
    diff = mu1 - mu2
    value = diff.dot(diff).item() + torch.trace(s1).item() + torch.trace(s2).item() - 2 * trace_sqrt_product(s1, s2)
    return max(value, 0.0)


def fid_from_stats(a: GaussianStats, b: GaussianStats) -> float:
    """Frechet distance between the Gaussians of two :class:`GaussianStats`."""
    return frechet_distance(a.mean, a.cov, b.mean, b.cov)


def fid_from_features(fa: torch.Tensor, fb: torch.Tensor) -> float:
    return fid_from_stats(GaussianStats.of(fa), GaussianStats.of(fb))


def _weighted_stats(f: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance of the rows of f repeated w_i times (w: integer counts)."""
    n = w.sum()
    mu = (w @ f) / n
    c = f - mu
    return mu, (c.T @ (w[:, None] * c)) / (n - 1)


def fid_bootstrap(
    real: torch.Tensor | GaussianStats,
    fake: torch.Tensor,
    *,
    n_boot: int = 200,
    level: float = 0.95,
    generator: torch.Generator | None = None,
) -> dict:
    """FID with a percentile bootstrap interval over samples (feature units squared).

    real: features (N, d), resampled with the fake set, or :class:`GaussianStats` (then held fixed,
    e.g. precomputed training statistics; the interval then covers the fake side only).
    fake: features (M, d). Returns ``{"fid", "low", "high", "se", "bootstrap_bias", "level",
    "n_boot", "n_real", "n_fake"}``: ``fid`` on the full sets; ``se`` the standard deviation of the
    bootstrap FIDs; ``low``/``high`` their (1 -+ level)/2 quantiles shifted by ``bootstrap_bias``
    (mean bootstrap FID - ``fid``) so that the interval is centred on ``fid`` (clipped at 0).
    FID is biased upward at finite sample size (Chong & Forsyth, 2020, arXiv:1911.07023) and the
    bootstrap FIDs are biased once more, by about the same amount, so ``bootstrap_bias`` estimates
    that bias: an FID below it is consistent with 0. The interval says how much FID moves between
    sample draws of this size, not where the infinite-sample FID lies: compare rows of equal size.

    >>> _ = torch.manual_seed(0)
    >>> ref_feats, fake_feats = torch.randn(200, 4), torch.randn(200, 4) + 0.5  # true FD: 4 * 0.5^2 = 1
    >>> out = fid_bootstrap(ref_feats, fake_feats, n_boot=200)
    >>> print(f"FID {out['fid']:.2f} +- {out['se']:.2f}")
    FID 0.91 +- 0.19
    """
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    f = fake.detach().to("cpu", torch.float64).reshape(len(fake), -1)
    if len(f) < 2:
        raise ValueError("FID needs at least 2 fake feature vectors")
    if isinstance(real, GaussianStats):
        r, stats = None, real
    else:
        r = real.detach().to("cpu", torch.float64).reshape(len(real), -1)
        stats = GaussianStats.of(r)
    value = fid_from_stats(stats, GaussianStats.of(f))
    boots = []
    for _ in range(n_boot):
        wf = torch.bincount(torch.randint(0, len(f), (len(f),), generator=g), minlength=len(f)).double()
        mu_f, cov_f = _weighted_stats(f, wf)
        if r is None:
            mu_r, cov_r = stats.mean, stats.cov
        else:
            wr = torch.bincount(torch.randint(0, len(r), (len(r),), generator=g), minlength=len(r)).double()
            mu_r, cov_r = _weighted_stats(r, wr)
        boots.append(frechet_distance(mu_r, cov_r, mu_f, cov_f))
    b = torch.tensor(boots, dtype=torch.float64)
    # Resampling with replacement repeats rows, which inflates FID's finite-sample bias once more;
    # centre the bootstrap distribution on the estimate so the interval shows spread, not that bias.
    bias = b.mean().item() - value
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    lo, hi = (torch.quantile(b, q) - bias).tolist()
    return {
        "fid": value,
        "low": max(lo, 0.0),
        "high": max(hi, 0.0),
        "se": b.std().item() if n_boot > 1 else math.nan,
        "bootstrap_bias": bias,
        "level": level,
        "n_boot": n_boot,
        "n_real": stats.n,
        "n_fake": len(f),
    }
