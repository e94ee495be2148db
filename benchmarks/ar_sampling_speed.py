"""Samples per second of the autoregressive models on 28x28 binary images (784 sequential positions).

Times ``model.sample(n)`` for MADE, PixelCNN, Gated PixelCNN and the cached ar-transformer at the
configurations of docs/benchmarks.md section 11 (the architectures trained there; the weights do not
change the cost of sampling, so the models are freshly initialised). Median of ``--repeats`` runs
after a warm-up. Writes ``benchmarks/results/ar_sampling_speed.json``.

    python benchmarks/ar_sampling_speed.py --threads 2
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
from deepgen.train.run import build_model  # noqa: E402

MODELS = {
    "made": {"hidden": (500,)},
    "pixelcnn": {"channels": 64, "layers": 7},
    "gated-pixelcnn": {"channels": 32, "layers": 7, "output_channels": 64},
    "ar-transformer": {"d_model": 128, "n_layers": 4, "n_heads": 4},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=100, help="samples per call (one batch)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    info = DataInfo("binarized-mnist", (1, 28, 28), 2)
    rows = []
    for name in args.models.split(","):
        model = build_model(name, info, MODELS[name], seed=0).eval()
        model.sample(2, generator=torch.Generator().manual_seed(0))  # warm-up
        times = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            model.sample(args.n, generator=torch.Generator().manual_seed(r))
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        row = {"model": name, "options": MODELS[name], "n": args.n, "seconds": times, "samples_per_s": args.n / t}
        rows.append(row)
        print(f"{name:15s} {args.n} samples in {t:.1f} s = {args.n / t:.2f} samples/s", flush=True)
    print(write_result("ar_sampling_speed", {"threads": args.threads, "n": args.n, "repeats": args.repeats}, rows))


if __name__ == "__main__":
    main()
