"""The lectures' complexity table for RBM training, measured: exact gradient O(2^N) against CD-k O(kBNp).

Wall time of one gradient (batch B = 100, one thread, median of --reps) for
* the exact log-likelihood gradient (the model expectation by enumerating the N visible units,
  ``RBM.exact_gradients``; p = 64 hidden units), N = 4 .. 20;
* CD-k for k = 1 and 10 (``RBM.gibbs`` + ``RBM.gradients``), N = 16 .. 1024 with p = 64, and p =
  16 .. 1024 with N = 784.
Beside each, the prediction ``c 2^N N p`` or ``c k B N p`` with c fitted (least squares in log
space) to that curve's three largest sizes, where fixed per-call costs matter least.

    python benchmarks/rbm_complexity.py --out-png docs/images/rbm_complexity.png     # about a minute
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import write_result  # noqa: E402
from deepgen.data import DataInfo  # noqa: E402
from deepgen.models.energy import RBM, RBMConfig  # noqa: E402

B = 100


def median_time(reps: int, fn, *fn_args) -> float:
    fn(*fn_args)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(*fn_args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def rbm(n: int, p: int) -> tuple[RBM, torch.Tensor]:
    torch.manual_seed(0)
    m = RBM(DataInfo("bits", (n,), levels=2), RBMConfig(hidden=p, init_std=0.1, exact_max_units=24))
    v = torch.bernoulli(torch.full((B, n), 0.3))
    return m, v


def exact_step(m, v):
    with torch.no_grad():
        m.exact_gradients(v, torch.sigmoid(m.hidden_field(v)))


def cd_step(m, v, k):
    with torch.no_grad():
        m.gradients(v, m.gibbs(v, k))


def fit(sizes, times, cost) -> tuple[float, list[float]]:
    """c minimising the squared log error of c * cost(size) over the three largest sizes."""
    top = np.argsort(sizes)[-3:]
    c = float(np.exp(np.mean([np.log(times[i]) - np.log(cost(sizes[i])) for i in top])))
    return c, [c * cost(s) for s in sizes]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out")
    ap.add_argument("--out-png")
    args = ap.parse_args()
    torch.set_num_threads(1)
    p0 = 64
    rows = {"exact_vs_N": [], "cd1_vs_N": [], "cd10_vs_N": [], "cd1_vs_p": []}
    for n in range(4, 21, 2):
        m, v = rbm(n, p0)
        rows["exact_vs_N"].append((n, median_time(args.reps if n < 18 else 2, exact_step, m, v)))
        print(f"exact  N={n:5d} p={p0}: {rows['exact_vs_N'][-1][1] * 1e3:9.3f} ms", flush=True)
    for n in (16, 32, 64, 128, 256, 512, 1024):
        m, v = rbm(n, p0)
        for k, key in ((1, "cd1_vs_N"), (10, "cd10_vs_N")):
            rows[key].append((n, median_time(args.reps, cd_step, m, v, k)))
            print(f"CD-{k:<3d} N={n:5d} p={p0}: {rows[key][-1][1] * 1e3:9.3f} ms", flush=True)
    for p in (16, 32, 64, 128, 256, 512, 1024):
        m, v = rbm(784, p)
        rows["cd1_vs_p"].append((p, median_time(args.reps, cd_step, m, v, 1)))
        print(f"CD-1   N=  784 p={p:5d}: {rows['cd1_vs_p'][-1][1] * 1e3:9.3f} ms", flush=True)
    costs = {
        "exact_vs_N": lambda n: 2.0**n * n * p0,
        "cd1_vs_N": lambda n: 1 * B * n * p0,
        "cd10_vs_N": lambda n: 10 * B * n * p0,
        "cd1_vs_p": lambda p: 1 * B * 784 * p,
    }
    results = {}
    for key, pts in rows.items():
        sizes, times = [s for s, _ in pts], [t for _, t in pts]
        c, pred = fit(sizes, times, costs[key])
        results[key] = {"sizes": sizes, "seconds": times, "predicted_seconds": pred, "c": c}
    settings = {"batch": B, "hidden_for_N_sweeps": p0, "visible_for_p_sweep": 784, "threads": 1, **vars(args)}
    print(f"wrote {write_result('rbm_complexity', settings, results, args.out)}")
    if args.out_png:
        plot(results, args.out_png)
        print(f"wrote {args.out_png}")


def plot(results, path):
    from deepgen.plots import _figure

    fig = _figure(10, 4)
    a, b = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    styles = {
        "exact_vs_N": ("exact gradient (enumerate 2^N)", "C3", "O(2^N N p)"),
        "cd1_vs_N": ("CD-1", "C0", "O(k B N p)"),
        "cd10_vs_N": ("CD-10", "C2", "O(k B N p)"),
    }
    for key, (label, colour, law) in styles.items():
        r = results[key]
        a.plot(r["sizes"], np.array(r["seconds"]) * 1e3, "o-", color=colour, label=f"{label}, measured")
        a.plot(r["sizes"], np.array(r["predicted_seconds"]) * 1e3, "--", color=colour, label=f"{law}, fitted c")
    a.set_xscale("log", base=2)
    a.set_yscale("log")
    a.set_xlabel("visible units N (p = 64 hidden, batch 100)")
    a.set_ylabel("ms per gradient (1 thread)")
    a.legend(fontsize=7)
    r = results["cd1_vs_p"]
    b.plot(r["sizes"], np.array(r["seconds"]) * 1e3, "o-", color="C0", label="CD-1, measured")
    b.plot(r["sizes"], np.array(r["predicted_seconds"]) * 1e3, "--", color="C0", label="O(k B N p), fitted c")
    b.set_xscale("log", base=2)
    b.set_yscale("log")
    b.set_xlabel("hidden units p (N = 784, batch 100)")
    b.legend(fontsize=7)
    fig.suptitle("RBM training cost per update: exact gradient vs contrastive divergence")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
