"""The discriminator's landscape over a 2-D toy, with and without a Lipschitz constraint (issue 13).

The lectures ask what a 1-Lipschitz discriminator does to the energy landscape. Three GANs with the
same MLP networks are trained on a toy (default 8gaussians, 2,000 steps, batch 256): the
non-saturating GAN (no constraint), WGAN-GP (gradient norm pushed to 1) and the hinge loss with
spectral normalisation (every layer's largest singular value 1). For each, the figure shows D(x)
over a grid with the data (white) and the generator's samples (red), and the norm of grad_x D, the
force the generator follows. Numbers printed (and written to ``OUT/energy.json``): the largest
gradient norm on the grid and the fraction of the grid where it is below 1% of that largest value
(flat, saturated regions that pass the generator no gradient).

    OMP_NUM_THREADS=1 python benchmarks/gan_energy.py --out docs/images/gan_energy.png
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from deepgen.data import DataSpec, load_dataset  # noqa: E402
from deepgen.train import TrainConfig, Trainer, build_model  # noqa: E402

SETTINGS = {
    "non-saturating (no constraint)": ({}, {}),
    "WGAN-GP (gradient penalty)": ({"loss": "wgan-gp", "d_steps": 5}, {"betas": (0.5, 0.9)}),
    "hinge + spectral norm": ({"loss": "hinge", "spectral_norm": True}, {}),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="8gaussians")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--out", default="docs/images/gan_energy.png")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset(DataSpec(args.data))
    lim, n = 4.0, 150
    xs = torch.linspace(-lim, lim, n)
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="xy"), -1).reshape(-1, 2)
    fig, axes = plt.subplots(len(SETTINGS), 2, figsize=(7.2, 3.3 * len(SETTINGS)))
    numbers = {}
    for row, (title, (options, train)) in enumerate(SETTINGS.items()):
        model = build_model("gan", ds.info, options, seed=0)
        cfg = TrainConfig(
            **{**type(model).train_defaults_for(ds.info, options), **train},
            steps=args.steps, batch_size=256, seed=0, progress=False, eval_every=0, ckpt_every=0, threads=1,
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            Trainer(model, ds, cfg, tmp, plots=False, quiet=True).fit()
        model.eval()
        g = grid.clone().requires_grad_(True)
        d = model.discriminator(g)
        (grad,) = torch.autograd.grad(d.sum(), g)
        gn = grad.norm(dim=1).detach()
        d = d.detach()
        samples = model.sample(1000, generator=torch.Generator().manual_seed(0))
        numbers[title] = {
            "max_grad_norm": gn.max().item(),
            "flat_fraction": (gn < 0.01 * gn.max()).float().mean().item(),
            "d_range": [d.min().item(), d.max().item()],
        }
        print(title, numbers[title], flush=True)
        for col, (values, label) in enumerate(((d, "D(x)"), (gn, "|grad D(x)|"))):
            ax = axes[row, col]
            im = ax.imshow(values.view(n, n), origin="lower", extent=(-lim, lim, -lim, lim), cmap="viridis")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
            ax.scatter(*ds.test.x[:500].T, s=1, c="white", alpha=0.6)
            ax.scatter(*samples.T, s=1, c="red", alpha=0.5)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_title(f"{title}\n{label}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    out.with_suffix(".json").write_text(json.dumps(numbers, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
