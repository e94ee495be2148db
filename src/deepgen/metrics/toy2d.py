"""Sample-quality metrics for the 2D toys, measured against the exact data density p_data.

For the toys of :mod:`deepgen.data.toy2d` the density p_data is known exactly
(:mod:`deepgen.metrics.toy2d_density`), so sample quality needs no feature network and no k-NN
manifold. :func:`toy_sample_quality` reports, for n model samples x_1..x_n:

* ``nll_data``: the mean -log p_data(x_i) in nats (a cross-entropy E_q[-log p]), beside the entropy
  floor H = E_p[-log p]. It measures **fidelity only** and *rewards collapse*: a model that puts all
  its samples on the densest point scores below H. Read it together with the diversity metrics
  below; for density models its partner is the test NLL E_p[-log q], whose gap to H is KL(p || q).
* ``high_quality``: the fraction of samples with p_data(x) >= t_q, where t_q is the density that a
  fraction 1 - q of real samples exceed (q = 1%, so 99% of real samples count as high quality).
* mode coverage: every sample is assigned to the mode (mixture component, arm, ring, square) that
  owns the nearest point of the mode's *skeleton* (its centre or centre curve, see
  :func:`mode_skeleton`); a sample with p_data(x) < t_q is assigned to no mode. A mode is **covered**
  when it receives at least ``cover_fraction`` (default 1/2) of the count that real data of the same
  size gives it, and ``mode_kl`` is KL(h_data || h_model) in nats between the data's and the model's
  histograms over the modes plus the "no mode" bin. KL in this direction is large when modes are
  missing (a diversity measure); it also grows when mass leaks into the "no mode" bin.

Modes are defined where the toy has them: 8gaussians (8 components) and 25gaussians (25),
checkerboard (the 8 dark squares), pinwheel (5 arms), moons (2 half-circles), circles (2 rings),
2spirals (2 arms). ``swissroll`` is one connected curve: mode metrics do not apply (``None``).
For equal-weight Gaussian mixtures the nearest centre is the component with the largest posterior.

The reference quantities (t_q, the data's mode histogram) come from a fixed seeded draw of
``n_reference`` real samples, so the same model samples always get the same numbers. ``mode_kl``
uses add-1/2 smoothing of the model's counts, so it depends on n: compare rows with equal n.

References: mode coverage and "high-quality samples" on these toys follow Metz et al. (2017, Unrolled
GANs, arXiv:1611.02163) and Srivastava et al. (2017, VEEGAN, arXiv:1705.07761), who count a mode as
captured from a single sample within 3 std; that counts a diffuse blob as capturing every mode, hence
the expected-share rule and the exact-density threshold here.

>>> x = toy2d.sample("8gaussians", 2500, torch.Generator().manual_seed(0))
>>> toy_sample_quality("8gaussians", x)["modes"]
8
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from deepgen.data import toy2d
from deepgen.errors import DataError

#: Toys without separable modes: the mode metrics report None for them.
NO_MODES = ("swissroll",)


def _curve(t: torch.Tensor, fn) -> torch.Tensor:
    return fn(t.double())


def mode_skeleton(name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Points (P, 2) on the centre (or centre curve) of each mode, and their mode labels (P,).

    The curves are the noise-free generative curves of :mod:`deepgen.data.toy2d` (for 2spirals
    shifted by the mean 1/12 of its uniform jitter). None for toys without modes (swissroll).
    """
    if name in ("8gaussians", "25gaussians"):
        centers, _ = toy2d.mode_centers(name)
        return centers.double(), torch.arange(len(centers))
    pts, labels = [], []

    def add(p):
        labels.append(torch.full((len(p),), len(pts)))
        pts.append(p)

    if name == "checkerboard":  # centres of the dark squares [2i, 2i+2] x [2j, 2j+2], i + j even
        for i in range(-2, 2):
            for j in range(-2, 2):
                if (i + j) % 2 == 0:
                    add(torch.tensor([[2.0 * i + 1, 2.0 * j + 1]], dtype=torch.float64))
    elif name == "moons":
        t = torch.linspace(0, math.pi, 400, dtype=torch.float64)
        add(torch.stack([2 * torch.cos(t) - 1.0, 2 * torch.sin(t) - 0.2], 1))
        add(torch.stack([2 * (1 - torch.cos(t)) - 1.0, 2 * (0.5 - torch.sin(t)) - 0.2], 1))
    elif name == "circles":
        a = torch.linspace(0, 2 * math.pi, 721, dtype=torch.float64)[:-1]
        for r in (3.0, 1.5):
            add(r * torch.stack([torch.cos(a), torch.sin(a)], 1))
    elif name == "2spirals":
        t = torch.linspace(0, 3 * math.pi, 2000, dtype=torch.float64)
        d = torch.stack([-torch.cos(t) * t, torch.sin(t) * t], 1)
        for sign in (1.0, -1.0):
            add(sign * d / 3 + 1.0 / 12)
    elif name == "pinwheel":
        r = torch.linspace(0.0, 3.0, 600, dtype=torch.float64)
        for k in range(5):
            ang = 2 * math.pi * k / 5 + 0.25 * torch.exp(r)
            add(2 * r[:, None] * torch.stack([torch.cos(ang), torch.sin(ang)], 1))
    else:
        return None
    return torch.cat(pts), torch.cat(labels)


def assign_modes(name: str, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor | None:
    """Index of the mode whose skeleton is nearest to each point (N,), ignoring the density; or None."""
    sk = mode_skeleton(name)
    if sk is None:
        return None
    pts, labels = sk
    x = torch.as_tensor(x).detach().double().reshape(-1, 2)
    idx = [torch.cdist(x[i : i + chunk], pts).argmin(1) for i in range(0, len(x), chunk)]
    return labels[torch.cat(idx)] if idx else labels.new_zeros(0)


def _log_density(name: str, x: torch.Tensor) -> torch.Tensor:
    from deepgen.metrics.toy2d_density import log_density

    return log_density(name, x)


@lru_cache(maxsize=32)
def _reference(name: str, quantile: float, n_reference: int, seed: int) -> tuple[float, torch.Tensor | None]:
    """(t_q as log p_data, data histogram over modes + 'no mode' (K + 1,) or None), from a seeded draw."""
    x = toy2d.sample(name, n_reference, torch.Generator().manual_seed(seed))
    lp = _log_density(name, x)
    thr = torch.quantile(lp, quantile).item()
    hist = _histogram(name, x, lp, thr)
    return thr, None if hist is None else hist / n_reference


def _histogram(name: str, x, lp: torch.Tensor, thr: float) -> torch.Tensor | None:
    """Counts per mode, last bin 'no mode' (p_data below the threshold), float64 (K + 1,)."""
    modes = assign_modes(name, x)
    if modes is None:
        return None
    k = int(mode_skeleton(name)[1].max()) + 1
    modes = torch.where(lp >= thr, modes, torch.full_like(modes, k))
    return torch.bincount(modes, minlength=k + 1).double()


def toy_sample_quality(
    name: str,
    samples: torch.Tensor,
    *,
    quantile: float = 0.01,
    cover_fraction: float = 0.5,
    n_reference: int = 10_000,
    seed: int = 12_345,
) -> dict:
    """Exact-density sample-quality metrics of ``samples`` (N, 2) for toy ``name`` (see module doc).

    Returns a dict: ``nll_data`` (mean -log p_data of the samples, nats; ``inf`` when a sample lies
    where p_data = 0, i.e. off the checkerboard), ``nll_data_se`` (its standard error, nats),
    ``entropy`` (H, nats), ``high_quality`` (fraction in [0, 1]), ``log_p_threshold`` (log t_q,
    nats), ``modes`` (covered modes, int), ``total_modes``, ``mode_kl`` (nats), ``mode_counts`` and
    ``expected_counts`` (per mode, then 'no mode'), and the settings. Mode entries are None for
    swissroll.
    """
    from deepgen.metrics.toy2d_density import entropy

    x = torch.as_tensor(samples).detach().double()
    if x.ndim != 2 or x.shape[1] != 2 or len(x) < 2:
        raise DataError(f"toy metrics need samples of shape (N >= 2, 2), got {tuple(x.shape)}")
    if not 0 < cover_fraction <= 1 or not 0 < quantile < 1:
        raise ValueError("cover_fraction must be in (0, 1] and quantile in (0, 1)")
    n = len(x)
    thr, data_hist = _reference(name, quantile, n_reference, seed)
    lp = _log_density(name, x)
    nll = -lp
    finite = bool(torch.isfinite(nll).all())
    out = {
        "n": n,
        "nll_data": nll.mean().item() if finite else math.inf,
        "nll_data_se": (nll.std() / math.sqrt(n)).item() if finite else math.inf,
        "entropy": entropy(name)["entropy_nats"],
        "high_quality": (lp >= thr).double().mean().item(),
        "log_p_threshold": thr,
        "quantile": quantile,
        "cover_fraction": cover_fraction,
        "modes": None,
        "total_modes": None,
        "mode_kl": None,
        "mode_counts": None,
        "expected_counts": None,
    }
    counts = _histogram(name, x, lp, thr)
    if counts is None:
        return out
    expected = data_hist * n
    k = len(counts) - 1
    # add-1/2 (Jeffreys) smoothing keeps KL finite when a mode gets no sample at all
    q = (counts + 0.5) / (n + 0.5 * len(counts))
    p = data_hist
    kl = torch.where(p > 0, p * (torch.log(p) - torch.log(q)), torch.zeros_like(p)).sum().item()
    out.update(
        modes=int((counts[:k] >= cover_fraction * expected[:k]).sum()),
        total_modes=k,
        mode_kl=kl,
        mode_counts=[int(c) for c in counts],
        expected_counts=[round(float(e), 2) for e in expected],
    )
    return out


def mode_coverage(
    samples: torch.Tensor, centers: torch.Tensor, std: float, n_std: float = 3.0, min_count: int = 20
) -> dict:
    """Legacy VEEGAN-style count: modes with >= ``min_count`` samples within ``n_std`` std of a centre.

    Kept for existing callers; it counts a diffuse blob as capturing every mode. Prefer
    :func:`toy_sample_quality`, which uses the exact density and each mode's expected share.
    """
    d = torch.cdist(samples.double(), centers.double())
    dmin, nearest = d.min(1)
    good = dmin <= n_std * std
    counts = torch.bincount(nearest[good], minlength=len(centers))
    return {
        "modes": int((counts >= min_count).sum()),
        "total_modes": len(centers),
        "high_quality": good.double().mean().item(),
    }
