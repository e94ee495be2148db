"""How many threads should a small model train with on 2 cores? Training throughput, 1 vs 2 threads.

For each (model, data) case, trains ``--steps`` steps in a fresh subprocess with ``--threads 1`` and
``--threads 2`` in turn (A B A B ...), and reads the median examples/s of the logged windows after
the first from the run's metrics.jsonl (so process start-up and warm-up are excluded). Optionally a
second, identical training job runs alongside (``--busy``), as when two jobs share the machine.

    python benchmarks/threads.py                   # -> benchmarks/results/threads.json
    python benchmarks/threads.py --busy            # the same with a competing job
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

from _common import write_result

CASES = [
    ("gmm", "moons", []),
    ("vae", "moons", []),
    ("vae", "digits", []),
    ("gan", "digits", []),
    ("vae", "mnist", ["--batch-size", "64"]),
]


def run(model: str, data: str, extra: list[str], threads: int, steps: int, data_dir: str | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "deepgen", "train", model, "--data", data, "--steps", str(steps)]
        cmd += ["--threads", str(threads), "--out", f"{tmp}/r", "-q", "--eval-every", "0", "--log-every", "25", *extra]
        if data_dir:
            cmd += ["--data-dir", data_dir]
        subprocess.run(cmd, check=True, capture_output=True)
        rates = [json.loads(line)["examples_per_s"] for line in open(f"{tmp}/r/metrics.jsonl") if '"train"' in line]
    return statistics.median(rates[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-dir", help="MNIST folder (the MNIST case is skipped without it)")
    ap.add_argument("--busy", action="store_true", help="run a competing 2-thread training job alongside")
    ap.add_argument("--cases", help="comma-separated MODEL:DATA to run (default: all)")
    ap.add_argument("--out")
    args = ap.parse_args()
    busy = None
    if args.busy:
        busy = subprocess.Popen(
            [sys.executable, "-m", "deepgen", "train", "vae", "--data", "digits", "--steps", "1000000",
             "--out", tempfile.mkdtemp() + "/busy", "-q", "--threads", "2", "--eval-every", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    results = []
    try:
        for model, data, extra in CASES:
            if data == "mnist" and not args.data_dir:
                continue
            if args.cases and f"{model}:{data}" not in args.cases.split(","):
                continue
            rates = {1: [], 2: []}
            for _ in range(args.repeats):
                for t in (1, 2):
                    rates[t].append(run(model, data, extra, t, args.steps, args.data_dir))
            med = {t: statistics.median(v) for t, v in rates.items()}
            row = {
                "model": model,
                "data": data,
                "examples_per_s": rates,
                "median": med,
                "ratio_2_over_1": med[2] / med[1],
            }
            results.append(row)
            write_result("threads_busy" if args.busy else "threads", vars(args), results, args.out)  # as we go
            print(f"{model:>4} on {data:<7} 1 thread {med[1]:>10,.0f} ex/s   2 threads {med[2]:>10,.0f} ex/s   "
                  f"2/1 = {med[2] / med[1]:.2f}", flush=True)  # fmt: skip
    finally:
        if busy is not None:
            busy.kill()
    print("wrote", write_result("threads_busy" if args.busy else "threads", vars(args), results, args.out))


if __name__ == "__main__":
    main()
