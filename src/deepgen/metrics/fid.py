"""Frechet distance between Gaussians fitted to features (FID: Heusel et al., 2017, arXiv:1706.08500).

    FD = ||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

Split into (1) feature extraction (:mod:`deepgen.metrics.features`), (2) statistics
(:class:`GaussianStats`, accumulated in float64, mergeable and reducible across processes) and
(3) the distance (:func:`frechet_distance`). The matrix square root is never formed: since
S_1 S_2 is similar to the symmetric PSD matrix A = S_1^(1/2) S_2 S_1^(1/2),
tr (S_1 S_2)^(1/2) = sum_i sqrt(lambda_i(A)), computed with two symmetric eigendecompositions. That
is exact for PSD inputs, needs no complex arithmetic, and cannot fail on a near-singular covariance
(tiny negative eigenvalues from round-off are clipped to 0).

The value depends on the feature network: FID proper uses the InceptionV3 pool features with the
standard weights; deepgen reports "FID (deepgen-mnist features)" etc. for its own networks.
"""

from __future__ import annotations

import torch


class GaussianStats:
    """Running first and second moments of feature vectors, in float64.

    >>> s = GaussianStats(128); s.update(feats_a); s.update(feats_b); s.mean, s.cov
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
