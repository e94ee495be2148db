"""How much faster does the key/value cache make ar-transformer sampling?

Samples a batch of 28x28 binary images (784 positions, binarised-MNIST-shaped data; the model is
untrained: the cost of decoding does not depend on the weights) from an ImageGPT-style transformer
(Chen et al. 2020) of a realistic size, two ways:

* cache:    one position per step, its query attending over the cached keys and values
* no cache: a forward pass over the whole prefix at every position (``-s cache=false``)

Both draw from the same seeded generator; the script reports whether their samples agree (they
consume randomness identically, so in float32 they differ only where rounding flips a draw).
Median of ``--repeats`` timings for the cache, ``--repeats-nocache`` for the slow path (one
uncached run takes minutes on one thread). Writes ``benchmarks/results/ar_transformer_cache.json``.

    OMP_NUM_THREADS=1 python benchmarks/ar_transformer_cache.py          # ~5 minutes on one thread
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import write_result  # noqa: E402
from deepgen.data import DataInfo  # noqa: E402
from deepgen.models.autoregressive.transformer import ARTransformer, ARTransformerConfig  # noqa: E402


def timed(model, n, seed, repeats, cache):
    times, sample = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        sample = model.sample(n, generator=torch.Generator().manual_seed(seed), cache=cache)
        times.append(time.perf_counter() - t0)
    return times, sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--size", type=int, default=28, help="image side: size x size positions")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--repeats-nocache", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    info = DataInfo("binarized-mnist", (1, args.size, args.size), 2)
    cfg = ARTransformerConfig(d_model=args.d_model, n_layers=args.layers, n_heads=args.heads)
    model = ARTransformer(info, cfg).eval()
    model.sample(2, generator=torch.Generator().manual_seed(0))  # warm-up
    cached, a = timed(model, args.batch, 1, args.repeats, True)
    uncached, b = timed(model, args.batch, 1, args.repeats_nocache, False)
    t_c, t_u = statistics.median(cached), statistics.median(uncached)
    results = {
        "positions": info.dim,
        "parameters": model.num_parameters,
        "cache_s": cached,
        "nocache_s": uncached,
        "cache_median_s": t_c,
        "nocache_median_s": t_u,
        "cache_ms_per_position": 1000 * t_c / info.dim,
        "speedup": t_u / t_c,
        "same_samples_fraction": (a == b).flatten(1).all(1).double().mean().item(),
        "same_pixels_fraction": (a == b).double().mean().item(),
    }
    settings = {**vars(args), "threads_used": torch.get_num_threads(), "dtype": "float32"}
    path = write_result("ar_transformer_cache", settings, results, args.out)
    print(
        f"ar-transformer sampling, {info.dim} positions, batch {args.batch}, d_model {args.d_model}, "
        f"{args.layers} layers, {torch.get_num_threads()} thread(s): cache {t_c:.2f} s, no cache {t_u:.1f} s, "
        f"speedup {t_u / t_c:.1f}x (identical samples: {results['same_samples_fraction']:.0%}) -> {path}"
    )


if __name__ == "__main__":
    main()
