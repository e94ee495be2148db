"""deepgen sample: draw samples from a trained run into a PNG grid or an .npy array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deepgen.cli.common import EXAMPLES_FMT, add_sample_args, labels_for, sample_options

EPILOG = """Examples:
  deepgen sample runs/vae-digits -n 64 --out samples.png
  deepgen sample runs/vae-digits -n 64 --out means.png -s mean=true     # a sampling option
  deepgen sample runs/gan-moons -n 10000 --out samples.npy --seed 1
  deepgen sample runs/cond-digits -n 30 --labels 0,1,2 --out grid.png   # conditional models
.npy files hold samples in the data's own units: integer levels 0..L-1 for discrete data,
un-standardised values for continuous data. PNG: an image grid, or a scatter/density plot for 2D data.
"""


def add_parser(sub):
    p = sub.add_parser(
        "sample",
        help="sample from a trained run",
        formatter_class=EXAMPLES_FMT,
        epilog=EPILOG,
        description="Draw N samples from the model in RUN (a run folder or checkpoint file).",
    )
    p.add_argument("run", metavar="RUN")
    p.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", required=True, help="output .png or .npy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--weights",
        choices=["auto", "ema", "raw"],
        default="auto",
        help="EMA or raw weights (auto: EMA when the run kept it)",
    )
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda or cuda:N")
    add_sample_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from deepgen.errors import DeepgenError
    from deepgen.plots import plot_2d, sample_view, save_samples
    from deepgen.train import load_run

    out = Path(args.out)
    if out.suffix not in (".png", ".npy"):
        raise DeepgenError(f"--out must end in .png or .npy, got {out.name!r}")
    if args.n <= 0:
        raise DeepgenError(f"-n must be positive, got {args.n}")
    loaded = load_run(args.run, device=args.device, weights=args.weights)
    model, info = loaded.model, loaded.info
    opts = model.sample_options(**sample_options(args))
    y = labels_for(args, model, args.n)
    if y is None and model.conditional:  # classes in turn over all n samples, not restarting per batch
        y = model.check_labels(None, args.n)
    view = sample_view(info)
    if out.suffix == ".png" and view == "scatter":
        raise DeepgenError(f"PNG output needs images, signals or 2D data; {info.name} has shape {info.shape}: use .npy")
    g = torch.Generator(device=loaded.device).manual_seed(args.seed)
    parts = []
    with torch.no_grad():
        for i in range(0, args.n, args.batch_size):
            m = min(args.batch_size, args.n - i)
            parts.append(model.sample(m, generator=g, y=None if y is None else y[i : i + m], options=opts))
    x = torch.cat(parts)
    out.parent.mkdir(parents=True, exist_ok=True)
    how = model.describe_sampling(opts)
    if out.suffix == ".npy":
        np.save(out, info.to_raw(x))
    elif view != "points2d":  # image grids (images, 2D signals, scene views) or curves (1D signals)
        save_samples(model, out, samples=x)
    else:  # 2D: the model's density (when it has one) with its samples; no data panel
        title = f"{model.name}: {args.n} samples" + (f" ({how})" if how else "")
        plot_2d(model, None, out, n_samples=min(args.n, 5000), generator=g, title=title, samples=x[:5000])
    extra = f", {how}" if how else ""
    print(f"wrote {args.n} samples from {loaded.path} (step {loaded.step}, {loaded.weights} weights{extra}) to {out}")
    return 0
