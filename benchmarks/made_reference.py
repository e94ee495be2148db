"""A from-scratch MADE (784-500-784, ReLU, natural order) trained like deepgen's, to check its curve.

Diagnostic for docs/benchmarks.md section 10: prints the training-batch NLL (nats) every 500 steps
for the first 3,000 steps of a minimal masked MLP written without deepgen's layers, on the same
static binarised MNIST, batch 100, Adam lr 1e-3. Compare with deepgen's run's metrics.jsonl.

    python benchmarks/made_reference.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from deepgen.data import DataSpec, load_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--steps", type=int, default=3000)
    args = ap.parse_args()
    torch.manual_seed(0)
    ds = load_dataset(DataSpec("binarized-mnist", data_dir=args.data_dir))
    x = ds.train.x.view(len(ds.train), -1)
    d, h = x.shape[1], 500
    m0 = torch.arange(1, d + 1)
    m1 = torch.randint(1, d, (h,))
    mask1 = (m1[:, None] >= m0[None, :]).float()  # hidden unit k sees inputs with degree <= m1(k)
    mask2 = (m0[:, None] > m1[None, :]).float()  # output d sees hidden units with degree < d
    lin1, lin2 = torch.nn.Linear(d, h), torch.nn.Linear(h, d)
    opt = torch.optim.Adam([*lin1.parameters(), *lin2.parameters()], lr=1e-3)
    g = torch.Generator().manual_seed(0)
    t0 = time.time()
    for s in range(args.steps):
        xb = x[torch.randint(0, len(x), (100,), generator=g)]
        logits = F.linear(F.relu(F.linear(xb, lin1.weight * mask1, lin1.bias)), lin2.weight * mask2, lin2.bias)
        nll = F.binary_cross_entropy_with_logits(logits, xb, reduction="none").sum(1).mean()
        opt.zero_grad()
        nll.backward()
        opt.step()
        if (s + 1) % 500 == 0:
            print(f"step {s + 1}: batch NLL {nll.item():.2f} nats ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
