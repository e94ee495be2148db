"""InfoGAN's categorical code against the digit classes (issue 13), and its traversal grids.

For a trained ``infogan`` run, ``--n`` samples are drawn for each value k of the categorical code
and classified by the data's deepgen classifier (deepgen-mnist for MNIST, deepgen-digits for
digits). The confusion matrix (code x predicted class) gets the best one-to-one matching of codes to
classes (Hungarian algorithm); the agreement is the fraction of samples whose predicted class is the
class matched to their code. It is what the InfoGAN paper reports as the categorical code's
"classification error" when it is read as an unsupervised classifier (5% error on MNIST).
Also written: ``OUT_categorical.png`` (rows: code values; columns: z) and one grid per continuous
code (rows: -1 ... 1).

    python benchmarks/infogan_codes.py runs/gan/infogan-mnist --out docs/images/infogan_mnist
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from scipy.optimize import linear_sum_assignment

from deepgen.metrics.features import extract, load_feature_network, network_for
from deepgen.plots import save_image_grid
from deepgen.train import load_run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--n", type=int, default=1000, help="samples per code value")
    ap.add_argument("--out", required=True, help="prefix of the PNG and JSON files")
    args = ap.parse_args()
    torch.set_num_threads(1)
    loaded = load_run(args.run)
    model = loaded.model
    k = model.config.categorical
    net = load_feature_network(network_for(model.info.shape))
    confusion = torch.zeros(k, model.info.num_classes or 10, dtype=torch.long)
    for c in range(k):
        x = model.sample(args.n, generator=torch.Generator().manual_seed(c), category=c)
        _, logits = extract(net, x)
        confusion[c] += torch.bincount(logits.argmax(1), minlength=confusion.shape[1])
    rows, cols = linear_sum_assignment(-confusion.numpy())
    agreement = confusion[rows, cols].sum().item() / confusion.sum().item()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "run": args.run,
        "samples_per_code": args.n,
        "agreement": agreement,
        "matching": {int(r): int(c) for r, c in zip(rows, cols)},
        "confusion": confusion.tolist(),
    }
    Path(f"{out}.json").write_text(json.dumps(result, indent=1))
    print(f"categorical code vs classes: agreement {agreement:.4f} after one-to-one matching")
    order = [int(r) for r, _ in sorted(zip(rows, cols), key=lambda rc: rc[1])]  # rows in class order
    grid = model.traversal("categorical", columns=10)
    grid = grid.view(k, 10, *model.info.shape)[order].flatten(0, 1)
    save_image_grid(grid, f"{out}_categorical.png", nrow=10)
    for j in range(model.config.continuous):
        save_image_grid(model.traversal(f"continuous:{j}", columns=10, steps=7), f"{out}_continuous{j}.png", nrow=10)
    print(f"wrote {out}.json and grids {out}_*.png")


if __name__ == "__main__":
    main()
