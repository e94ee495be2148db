"""Recompute the differential entropies (nats) of the 2D toy distributions.

For each toy, H = -E[log p(X)] is estimated as the Monte Carlo mean of
``-deepgen.metrics.toy2d_density.log_density(name, x)`` over n fresh samples
``x = deepgen.data.toy2d.sample(name, n, torch.Generator().manual_seed(seed))``, with standard error
sd / sqrt(n). Where the entropy is known analytically (checkerboard: log of its support area, 32;
25gaussians: 25 non-overlapping Gaussians) that value is reported as the entropy and the Monte Carlo
mean is kept as a check. Independently of the densities, a Kozachenko-Leonenko k-nearest-neighbour
estimate (k = 3, needs scipy) is printed next to each value: it is biased by a few 1e-3 nats at
n = 200k (about +0.01 for the checkerboard, whose support has edges), so it is a sanity check only.

    python benchmarks/toy_entropy.py                     # prints the table, writes the result JSON
    python benchmarks/toy_entropy.py --install           # also rewrites the shipped toy2d_entropy.json

Results go to ``benchmarks/results/toy_entropy.json`` (``--out``): command, date, torch version,
threads, settings and per-toy results. The shipped file ``src/deepgen/metrics/toy2d_entropy.json`` is
written only with ``--install``. Defaults (n = 500000, seed 2026, 1 thread) take about a minute.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from deepgen.data.toy2d import sample
from deepgen.metrics.toy2d_density import ENTROPY_FILE, NAMES, log_density

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "toy_entropy.json"
MAX_STDERR = 0.003

DENSITY_METHOD = {
    "moons": "1D composite Gauss-Legendre quadrature over the uniform arc angle of the Gaussian-noise kernel",
    "circles": "closed form (per radius a 2D Rice density, via the scaled Bessel function I0e)",
    "8gaussians": "closed-form Gaussian mixture",
    "25gaussians": "closed-form Gaussian mixture",
    "checkerboard": "uniform 1/32 on the closed dark squares",
    "2spirals": (
        "1D composite Gauss-Legendre quadrature over t (density 2t/(3pi)^2) of the closed-form "
        "uniform-jitter-square x Gaussian kernel (normal CDFs, in log space)"
    ),
    "pinwheel": (
        "exact change of variables from the latent Gaussian of each arm, summing every preimage "
        "(found by bisection on the fold-free pieces of the circle map)"
    ),
    "swissroll": "1D composite Gauss-Legendre quadrature over the uniform t of the Gaussian-noise kernel",
}


def analytic_entropy(name: str) -> tuple[float, str] | None:
    """(H, description) for the toys whose entropy is known in closed form, else None."""
    if name == "checkerboard":
        return math.log(32.0), "analytic: log(32), log of the support area (8 squares of side 2, p = 1/32)"
    if name == "25gaussians":
        s = 0.05 / 2.828
        h = math.log(25) + 1 + math.log(2 * math.pi * s * s)
        return h, (
            "analytic: log(25) + 1 + log(2 pi s^2) with s = 0.05/2.828 (25 equal-weight Gaussians whose "
            "centres are 200 s apart, so the overlap correction is below e^-4000)"
        )
    return None


# square [-L, L]^2 and spacing h of the deterministic grid cross-check: every box reaches >= 9 noise
# standard deviations beyond the support, and h <= noise std / 2, where the midpoint rule on these
# Gaussian-smoothed densities is accurate to ~1e-9 (checked: h and 1.5 h agree to 1e-6 or better).
GRID = {
    "moons": (5.0, 0.05),
    "circles": (5.5, 0.06),
    "8gaussians": (6.0, 0.08),
    "2spirals": (4.6, 0.035),
    "pinwheel": (6.5, 0.03),
    "swissroll": (5.0, 0.05),
}


def grid_entropy(name: str) -> dict | None:
    """-sum p log p h^2 (and sum p h^2) on a midpoint grid at spacing h and 1.5 h; None if no grid."""
    if name not in GRID:
        return None
    half, h = GRID[name]
    out = {}
    for key, step in (("h", h), ("1.5h", 1.5 * h)):
        g = torch.arange(-half + step / 2, half, step, dtype=torch.float64)
        lp = log_density(name, torch.cartesian_prod(g, g))
        p = torch.exp(lp)
        out[key] = (-(p * lp).sum().item() * step * step, p.sum().item() * step * step)
    return {
        "grid_entropy_nats": out["h"][0],
        "grid_mass": out["h"][1],
        "grid_h": h,
        "grid_half_width": half,
        "grid_change_at_1.5h": out["1.5h"][0] - out["h"][0],
    }


def knn_entropy(x: torch.Tensor, k: int = 3) -> float:
    """Kozachenko-Leonenko estimate of the entropy (nats) of 2D samples x (needs scipy)."""
    import numpy as np
    from scipy.spatial import cKDTree
    from scipy.special import digamma

    pts = x.double().numpy()
    r = cKDTree(pts).query(pts, k=k + 1)[0][:, k]  # distance to the k-th neighbour other than itself
    return float(digamma(len(pts)) - digamma(k) + math.log(math.pi) + 2 * np.log(r).mean())


def run_one(name: str, n: int, seed: int, knn: int, grid: bool = True) -> dict:
    """Entropy of one toy: the shipped fields first, then the Monte Carlo, grid and kNN checks."""
    t0 = time.perf_counter()
    x = sample(name, n, torch.Generator().manual_seed(seed))
    nll = -log_density(name, x)
    if not torch.isfinite(nll).all():
        raise RuntimeError(f"{name}: non-finite log density at a sample")
    mc = nll.mean().item()
    mc_se = (nll.std() / math.sqrt(n)).item()
    checks: dict = {"mc_entropy_nats": mc, "mc_stderr": mc_se, "mc_sd": nll.std().item()}
    checks["seconds"] = round(time.perf_counter() - t0, 2)
    if grid:
        checks.update(grid_entropy(name) or {})
    if knn:
        try:
            checks.update(knn_entropy_nats=knn_entropy(x[:knn]), knn_n=min(knn, n))
        except ImportError:
            checks.update(knn_entropy_nats=None)

    sampling = f"n={n} samples of toy2d.sample({name!r}, n, torch.Generator().manual_seed({seed}))"
    exact = analytic_entropy(name)
    if exact is None:
        method = (
            f"monte_carlo: mean of -log_density over {sampling}; stderr = sd/sqrt(n). Density: {DENSITY_METHOD[name]}."
        )
        if "grid_entropy_nats" in checks:
            method += (
                f" Cross-check: deterministic midpoint-grid quadrature of -p log p (h = {checks['grid_h']}) "
                f"gives {checks['grid_entropy_nats']:.6f}."
            )
        res = {"entropy_nats": mc, "stderr": mc_se, "n_samples": n, "method": method}
    else:
        h, how = exact
        method = f"{how}. Monte Carlo check, mean of -log_density over {sampling}: {mc:.5f} +- {mc_se:.5f}."
        res = {"entropy_nats": h, "stderr": 0.0, "n_samples": 0, "method": method}
    return {**res, **checks}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500_000, help="samples per toy (default 500000)")
    ap.add_argument("--seed", type=int, default=2026, help="generator seed (default 2026; data use 0..10)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"result JSON (default {DEFAULT_OUT})")
    ap.add_argument("--names", default=",".join(NAMES), help="comma-separated toys (default: all)")
    ap.add_argument("--knn", type=int, default=200_000, help="samples for the kNN cross-check (0: skip)")
    ap.add_argument("--no-grid", action="store_true", help="skip the deterministic grid cross-check")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--install", action="store_true", help=f"also write the shipped {ENTROPY_FILE.name}")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [s.strip() for s in args.names.split(",") if s.strip()]
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        ap.error(f"unknown toys {unknown}; valid: {', '.join(NAMES)}")

    results = {}
    print(
        f"{'toy':13s} {'H (nats)':>10s} {'stderr':>8s} {'MC mean':>10s} {'MC se':>8s} {'grid':>10s} "
        f"{'(MC-grid)/se':>12s} {'kNN':>8s} {'sec':>6s}  method"
    )
    for name in names:
        r = run_one(name, args.n, args.seed, args.knn, not args.no_grid)
        results[name] = r
        knn = r.get("knn_entropy_nats")
        knn_s = f"{knn:8.4f}" if knn is not None else f"{'-':>8s}"
        grid = r.get("grid_entropy_nats")
        if grid is None:
            grid_s = f"{'-':>10s} {'-':>12s}"
        else:
            grid_s = f"{grid:10.5f} {(r['mc_entropy_nats'] - grid) / r['mc_stderr']:12.2f}"
        kind = r["method"].split(":")[0]
        print(
            f"{name:13s} {r['entropy_nats']:10.5f} {r['stderr']:8.5f} {r['mc_entropy_nats']:10.5f} "
            f"{r['mc_stderr']:8.5f} {grid_s} {knn_s} {r['seconds']:6.1f}  {kind}",
            flush=True,
        )

    settings = {"n": args.n, "seed": args.seed, "knn_n": args.knn, "knn_k": 3, "names": names}
    args.out = write_result("toy_entropy", settings, results, args.out)
    print(f"wrote {args.out}")

    too_noisy = [k for k, r in results.items() if r["stderr"] > MAX_STDERR]
    if too_noisy:
        print(f"warning: stderr above {MAX_STDERR} for {too_noisy}; use a larger --n", file=sys.stderr)
    if args.install:
        if too_noisy:
            print("not installing: some stderr too large", file=sys.stderr)
            return 1
        shipped = json.loads(ENTROPY_FILE.read_text()) if ENTROPY_FILE.exists() else {}
        for name, r in results.items():
            shipped[name] = {k: r[k] for k in ("entropy_nats", "stderr", "n_samples", "method")}
        shipped = {k: shipped[k] for k in NAMES if k in shipped}
        ENTROPY_FILE.write_text(json.dumps(shipped, indent=2) + "\n")
        print(f"installed {ENTROPY_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
