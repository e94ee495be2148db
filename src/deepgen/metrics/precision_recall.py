"""Improved precision and recall (Kynkaanniemi et al., 2019, arXiv:1904.06991), plus density and
coverage (Naeem et al., 2020, arXiv:2002.09797), from k-nearest-neighbour manifolds in feature space.

Each feature set defines a manifold: the union of balls around its points, each ball's radius being
the distance to that point's k-th nearest neighbour within the set (k = 3 as in the paper).
Precision: fraction of generated samples inside the real manifold (quality). Recall: fraction of real
samples inside the generated manifold (coverage of the data's variety).
"""

from __future__ import annotations

import torch


def _knn_radii(x: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    out = []
    for i in range(0, len(x), chunk):
        d = torch.cdist(x[i : i + chunk], x)
        out.append(d.kthvalue(k + 1, dim=1).values)  # +1: the point itself is at distance 0
    return torch.cat(out)


def _inside_counts(
    queries: torch.Tensor, centers: torch.Tensor, radii: torch.Tensor, chunk: int = 2048
) -> torch.Tensor:
    """For each query, the number of balls (centers, radii) that contain it."""
    out = []
    for i in range(0, len(queries), chunk):
        d = torch.cdist(queries[i : i + chunk], centers)
        out.append((d <= radii.unsqueeze(0)).sum(1))
    return torch.cat(out)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> dict[str, float]:
    """Improved precision/recall and density/coverage between feature sets (N, d) and (M, d)."""
    real, fake = real.double().flatten(1), fake.double().flatten(1)
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} examples per set")
    r_real, r_fake = _knn_radii(real, k), _knn_radii(fake, k)
    fake_in_real = _inside_counts(fake, real, r_real)
    real_in_fake = _inside_counts(real, fake, r_fake)
    # coverage: real points whose own k-NN ball holds at least one generated point
    d_min = torch.cat([torch.cdist(real[i : i + 2048], fake).min(1).values for i in range(0, len(real), 2048)])
    return {
        "precision": (fake_in_real > 0).double().mean().item(),
        "recall": (real_in_fake > 0).double().mean().item(),
        "density": (fake_in_real.double().sum() / (k * len(fake))).item(),
        "coverage": (d_min <= r_real).double().mean().item(),
    }
