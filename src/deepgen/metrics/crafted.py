"""Crafted sample sets whose quality is known, for validating sample-quality metrics.

A metric that claims to measure fidelity or diversity must rank these sets in the order their
construction implies; ``tests/metrics/test_crafted_cases.py`` checks it and
``benchmarks/crafted_cases.py`` tabulates it (``docs/benchmarks.md, section 6``).

2D toys (:func:`toy_cases`), all drawn fresh from a seeded generator:

* ``true``: the toy's own sampler (the best any model can do);
* ``blob``: uniform on the bounding box of 10,000 real samples (a diffuse GAN);
* ``gaussian``: one Gaussian with the data's mean and covariance (a moment-matched baseline);
* ``drop_1``: the true distribution with one mode missing (7 of 8 for 8gaussians);
* ``collapse_2``: only two modes (for toys with more than two);
* ``collapse_1``: only one mode, i.e. "7-of-8 collapse" on 8gaussians.

Collapses are exact conditionals of the data distribution (real samples kept when their nearest
mode, :func:`deepgen.metrics.toy2d.assign_modes`, is among the kept ones), so each kept mode is
sampled perfectly: their fidelity equals the true sampler's and only their diversity is worse.

Images (:func:`image_cases`), each of ``n`` images in [0, 1] with shape (n, C, H, W):

* ``real``: held-out real images (disjoint from the metric's reference set);
* ``noisy``: the held-out images plus N(0, 0.2^2) pixel noise, clipped to [0, 1];
* ``blur``: the held-out images blurred by a Gaussian of ``blur_sigma`` pixels;
* ``single_class``: held-out images of one class only (tiled when the class has fewer than n);
* ``independent``: independent per-pixel categorical samples with the training set's per-pixel
  marginals over the data's levels (what deepgen's ``independent`` baseline learns, without training);
* ``uniform_noise``: every pixel uniform on the levels (no structure at all).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deepgen.data import toy2d
from deepgen.metrics.toy2d import assign_modes, mode_skeleton


def _kept_modes(k: int, case: str) -> list[int] | None:
    if case == "drop_1":
        return list(range(1, k))
    if case == "collapse_2":
        return [0, k // 2]  # two modes far apart
    if case == "collapse_1":
        return [0]
    return None


def toy_case_names(name: str) -> list[str]:
    """The crafted cases defined for toy ``name``, best first in overall quality."""
    sk = mode_skeleton(name)
    if sk is None:
        return ["true", "blob", "gaussian"]
    k = int(sk[1].max()) + 1
    return ["true", "blob", "gaussian", "drop_1"] + (["collapse_2"] if k > 2 else []) + ["collapse_1"]


def _conditional(name: str, n: int, keep: list[int], g: torch.Generator) -> torch.Tensor:
    """n real samples whose nearest mode is in ``keep`` (rejection from the true sampler)."""
    parts, have = [], 0
    while have < n:
        x = toy2d.sample(name, 4 * n, g)
        x = x[torch.isin(assign_modes(name, x), torch.tensor(keep))]
        parts.append(x)
        have += len(x)
    return torch.cat(parts)[:n]


def toy_case(name: str, case: str, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` float32 points (n, 2) of crafted case ``case`` for toy ``name`` (see module doc)."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    if case == "true":
        return toy2d.sample(name, n, g)
    if case in ("blob", "gaussian"):
        ref = toy2d.sample(name, 10_000, torch.Generator().manual_seed(777)).double()
        if case == "blob":
            lo, hi = ref.amin(0), ref.amax(0)
            return (lo + (hi - lo) * torch.rand(n, 2, generator=g, dtype=torch.float64)).float()
        chol = torch.linalg.cholesky(torch.cov(ref.T))
        z = torch.randn(n, 2, generator=g, dtype=torch.float64)
        return (ref.mean(0) + z @ chol.T).float()
    sk = mode_skeleton(name)
    keep = None if sk is None else _kept_modes(int(sk[1].max()) + 1, case)
    if keep is None or case not in toy_case_names(name):
        raise ValueError(f"crafted case {case!r} is not defined for toy {name!r}")
    return _conditional(name, n, keep, g)


def toy_cases(name: str, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every crafted case of toy ``name`` with ``n`` points each, seeded per case."""
    names = toy_case_names(name)
    return {c: toy_case(name, c, n, torch.Generator().manual_seed(seed + i)) for i, c in enumerate(names)}


# --------------------------------------------------------------------------- images


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of images (N, C, H, W), kernel radius 3 sigma, replicate padding."""
    r = max(1, int(3 * sigma + 0.5))
    k = torch.arange(-r, r + 1, dtype=torch.float32)
    w = torch.exp(-k * k / (2 * sigma * sigma))
    w = (w / w.sum()).view(1, 1, 1, -1).repeat(x.shape[1], 1, 1, 1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), w, groups=x.shape[1])
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), w.transpose(2, 3), groups=x.shape[1])


def independent_pixels(train: torch.Tensor, levels: int, n: int, g: torch.Generator) -> torch.Tensor:
    """n images with independent per-pixel categorical values, the training set's marginals.

    ``train`` (N, C, H, W) holds values k / (levels - 1); probabilities use add-1/2 smoothing.
    """
    k = torch.round(train.reshape(len(train), -1) * (levels - 1)).long().clamp(0, levels - 1)
    counts = torch.zeros(k.shape[1], levels, dtype=torch.float64)
    counts.scatter_add_(1, k.T, torch.ones_like(k.T, dtype=torch.float64))
    probs = (counts + 0.5) / (len(train) + 0.5 * levels)
    draws = torch.multinomial(probs, n, replacement=True, generator=g).T  # (n, pixels)
    return (draws.float() / (levels - 1)).reshape(n, *train.shape[1:])


def image_cases(
    held_out: torch.Tensor,
    held_out_labels: torch.Tensor,
    train: torch.Tensor,
    levels: int,
    n: int,
    *,
    seed: int = 0,
    blur_sigma: float = 1.0,
    noise_std: float = 0.2,
    single_class: int = 1,
) -> dict[str, torch.Tensor]:
    """The image crafted cases (module doc), ``n`` images each; ``n`` <= len(held_out)."""
    if n > len(held_out):
        raise ValueError(f"n = {n} exceeds the {len(held_out)} held-out images")
    g = torch.Generator().manual_seed(seed)
    real = held_out[torch.randperm(len(held_out), generator=g)[:n]]
    one = held_out[held_out_labels == single_class]
    one = one[torch.randperm(len(one), generator=g)].repeat((n + len(one) - 1) // len(one), 1, 1, 1)[:n]
    shape = (n, *train.shape[1:])
    uniform = torch.randint(0, levels, shape, generator=g).float() / (levels - 1)
    return {
        "real": real,
        "noisy": (real + noise_std * torch.randn(real.shape, generator=g)).clamp(0, 1),
        "blur": gaussian_blur(real, blur_sigma),
        "single_class": one,
        "independent": independent_pixels(train, levels, n, g),
        "uniform_noise": uniform,
    }
