"""MADE training throughput as a fraction of this machine's matmul peak, measured in the same run.

A MADE training step (784 -> H -> 784 masked MLP, Bernoulli output, Adam) costs about
``6 * B * (2 * D * H)`` floating-point operations (forward 2 B D H per layer, backward twice that;
the mask products, ReLU, loss and Adam are O(D H + B D), small next to it). The script times

* the peak: ``torch.mm`` of two 2048 x 2048 float32 matrices (the best this CPU and torch's BLAS
  do), and the same product at the MADE layer's shape (B x D) @ (D x H);
* deepgen's MADE: ``model.loss(x)`` + backward + ``Adam.step`` on static-binarised-MNIST-shaped
  binary batches (random data: the cost does not depend on the values);

interleaved (peak, MADE, peak, ...) so a machine that is busier at one moment affects both, and
reports each as GFLOP/s and MADE's fraction of the peak, for a few batch sizes. Writes
``benchmarks/results/made_throughput.json``.

    python benchmarks/made_throughput.py --threads 2
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import write_result  # noqa: E402
from deepgen.data import DataInfo  # noqa: E402
from deepgen.models.autoregressive.made import MADE, MADEConfig  # noqa: E402


def best_time(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def train_steps(model, opt, x, steps: int) -> None:
    """``steps`` training steps of ``model`` on the batch ``x``: loss, backward, optimiser step."""
    for _ in range(steps):
        loss = model.loss(x)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--batch-sizes", default="100,500,1000")
    ap.add_argument("--steps", type=int, default=20, help="training steps per timing")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved peak/MADE rounds")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d, h = 784, args.hidden
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    peak_flops = 2 * 2048**3

    rows = []
    for bs in [int(v) for v in args.batch_sizes.split(",")]:
        model = MADE(DataInfo("binarized-mnist", (1, 28, 28), 2), MADEConfig(hidden=(h,)))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
        x = (torch.rand(bs, 1, 28, 28) < 0.13).float()
        xa, wa = torch.randn(bs, d), torch.randn(d, h)

        step = functools.partial(train_steps, model, opt, x, args.steps)
        peaks, shaped, made = [], [], []
        for _ in range(args.rounds):
            peaks.append(peak_flops / best_time(functools.partial(torch.mm, a, b), 3))
            shaped.append(2 * bs * d * h / best_time(functools.partial(torch.mm, xa, wa), 20))
            made.append(args.steps * 6 * bs * 2 * d * h / best_time(step, 1))
        row = {
            "batch_size": bs,
            "peak_gflops": statistics.median(peaks) / 1e9,
            "shape_matched_mm_gflops": statistics.median(shaped) / 1e9,
            "made_gflops": statistics.median(made) / 1e9,
            "made_steps_per_s": statistics.median(made) / (6 * bs * 2 * d * h),
            "made_examples_per_s": statistics.median(made) / (6 * 2 * d * h),
        }
        row["fraction_of_peak"] = row["made_gflops"] / row["peak_gflops"]
        row["fraction_of_shape_matched"] = row["made_gflops"] / row["shape_matched_mm_gflops"]
        rows.append(row)
        print(
            f"batch {bs:5d}: peak {row['peak_gflops']:.1f} GFLOP/s, (B x D)(D x H) mm "
            f"{row['shape_matched_mm_gflops']:.1f}, MADE {row['made_gflops']:.1f} GFLOP/s "
            f"({row['made_examples_per_s']:.0f} examples/s) = {row['fraction_of_peak']:.0%} of peak",
            flush=True,
        )
    settings = {"threads": args.threads, "hidden": h, "steps_per_timing": args.steps, "rounds": args.rounds}
    print(write_result("made_throughput", settings, rows))


if __name__ == "__main__":
    main()
