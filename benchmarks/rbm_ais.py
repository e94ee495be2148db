"""A trained RBM's test NLL with log Z by AIS at a chosen number of chains (issue 12, docs 15.3).

`deepgen eval --full` uses Salakhutdinov & Murray's 100 chains; for a sharp model their standard
error of log Z is large, and AIS underestimates log Z in expectation, so a run with more chains (and
another seed) checks the number.

    OMP_NUM_THREADS=1 python benchmarks/rbm_ais.py runs/energy/rbm-cd25-mnist --chains 400 --seed 1 \
        --out benchmarks/results/rbm_cd25_ais400.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from deepgen.data import load_dataset
from deepgen.train import load_run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--chains", type=int, default=400)
    ap.add_argument("--steps", type=int, default=14_500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data-dir", default=None, help="default: the run's")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = load_run(args.run)
    m = run.model
    spec = run.data_spec if args.data_dir is None else type(run.data_spec)(run.data_spec.name, data_dir=args.data_dir)
    ds = load_dataset(spec)
    t = time.time()
    g = torch.Generator().manual_seed(args.seed)
    logz, se = m.ais_log_partition(steps=args.steps, chains=args.chains, generator=g)
    with torch.no_grad():
        x = ds.test.x
        f = torch.cat([m.free_energy(m.to_units(x[i : i + 1000])).double() for i in range(0, len(x), 1000)])
    nll = f + logz
    out = {
        "run": args.run, "ais_steps": args.steps, "ais_chains": args.chains, "seed": args.seed,
        "log_z": logz, "log_z_se": se, "test_nll": nll.mean().item(),
        "test_nll_sem": (nll.std() / len(nll) ** 0.5).item(), "seconds": time.time() - t,
    }  # fmt: skip
    print(out)
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
