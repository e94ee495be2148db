"""Figures of the flows benchmark (docs/benchmarks.md section 12): learned 2-D densities and image flows.

``toys``: an FFJORD-style grid (Grathwohl et al. 2019, fig. 2): one row per toy, the data's histogram
first, then exp(log p) of each trained flow on the same square, read from ``deepgen compare`` folders
(their ``runs/<model>/checkpoint.pt``); ``A,B`` joins the models of two compare folders of one toy::

    python benchmarks/flow_figures.py toys --compare runs/flows-moons runs/flows-8gaussians \\
        --out docs/images/flows_toys.png
    python benchmarks/flow_figures.py toys --compare runs/flows-moons,runs/flows2-moons ...

``images``: for a trained image flow, sample grids at several temperatures side by side and latent
interpolations between pairs of test images (each row: x0, decoded points on the latent line, x1)::

    python benchmarks/flow_figures.py images --run /work/bench/mnist-glow --out docs/images/glow_mnist
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from deepgen.data import load_dataset  # noqa: E402
from deepgen.plots import density_grid, save_image_grid  # noqa: E402
from deepgen.train import load_run  # noqa: E402


def toys(compares: list[str], out: str, n: int = 200, half_width: float = 4.0) -> Path:
    rows = []  # per toy: (results of its first folder, {model: its run folder})
    for spec in compares:
        runs: dict[str, Path] = {}
        first = None
        for folder in spec.split(","):
            res = json.loads((Path(folder) / "results.json").read_text())
            first = first or res
            for r in res["rows"]:
                if r.get("family") == "flow":
                    runs.setdefault(r["model"], Path(folder) / "runs" / r["model"])
        rows.append((first, runs))
    models = list(rows[0][1])
    fig, axes = plt.subplots(len(rows), len(models) + 1, figsize=(1.8 * (len(models) + 1), 1.8 * len(rows)))
    axes = np.atleast_2d(axes)
    bounds = (-half_width, half_width, -half_width, half_width)
    for i, (res, runs) in enumerate(rows):
        data_name = res["meta"]["data"]["name"]
        ds = load_dataset(load_run(runs[models[0]]).data_spec)  # standardised as trained
        x = ds.test.x.numpy()
        ax = axes[i, 0]
        ax.hist2d(x[:, 0], x[:, 1], bins=n // 2, range=[bounds[:2], bounds[2:]], cmap="viridis")
        ax.set_ylabel(data_name)
        if i == 0:
            ax.set_title("data")
        for j, name in enumerate(models, start=1):
            ax = axes[i, j]
            run = load_run(runs[name])
            with torch.no_grad():
                grid = density_grid(run.model, bounds, n)
            if grid is not None:
                dens, _ = grid
                ax.imshow(dens, origin="lower", extent=bounds, cmap="viridis", vmax=np.quantile(dens, 0.995))
            if i == 0:
                ax.set_title(name)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def images(run_dir: str, out: str, temperatures=(0.0, 0.5, 0.7, 1.0), n: int = 36, pairs: int = 6, steps: int = 9):
    run = load_run(run_dir)
    model, info = run.model, run.model.info
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    panels = []
    with torch.no_grad():
        for t in temperatures:
            panels.append(model.sample(n, temperature=t, generator=torch.Generator().manual_seed(0)))
    side = int(round(n**0.5))
    grids = [torch.as_tensor(p).view(side, side, *info.shape) for p in panels]
    # one image: the temperature panels side by side, separated by a blank column of images
    blank = torch.ones(side, 1, *info.shape)
    wide = torch.cat([torch.cat([gr, blank], 1) for gr in grids], 1)[:, :-1]
    paths = {"temperatures": save_image_grid(wide.flatten(0, 1), out_dir / "temperatures.png", nrow=wide.shape[1])}
    test = load_dataset(run.data_spec).test.x
    idx = torch.randperm(len(test), generator=g)[: 2 * pairs]
    path = model.interpolate(test[idx[:pairs]], test[idx[pairs:]], steps=steps)
    paths["interpolations"] = save_image_grid(path.flatten(0, 1), out_dir / "interpolations.png", nrow=steps)
    (out_dir / "temperatures.txt").write_text(
        "temperatures, left to right: " + ", ".join(map(str, temperatures)) + "\n"
    )
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("toys")
    t.add_argument(
        "--compare",
        nargs="+",
        required=True,
        help="deepgen compare output folders, one per toy (A,B joins two folders of one toy)",
    )
    t.add_argument("--out", required=True)
    i = sub.add_parser("images")
    i.add_argument("--run", required=True)
    i.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.cmd == "toys":
        print(toys(args.compare, args.out))
    else:
        print(images(args.run, args.out))


if __name__ == "__main__":
    main()
