"""SIREN's Poisson reconstruction (Sitzmann et al. 2020, Sec. 4.1): a photo fitted from its values,
from its gradient alone, or from its Laplacian alone (issue 14).

The photo is scikit-learn's ``china.jpg`` (its centre ``--crop`` square resampled to ``--size``,
converted to grey as in the paper's single-channel experiment unless ``--rgb``). Its derivative
targets are the signal's own columns (Sobel gradient and 5-point Laplacian, :mod:`deepgen.data.signals`).
Three SIRENs of the same shape train with Adam (lr 1e-4) on full batches for ``--steps`` steps, with
``fit=values``, ``fit=gradient`` and ``fit=laplacian``. A derivative fit fixes the photo only up to
a constant (gradient) or a harmonic function (Laplacian); the constant comes from the photo's mean,
nothing else from its values. Writes ``OUT.json`` (PSNR of each reconstruction on the fitted
pixels) and ``OUT.png`` (the photo, its gradient magnitude and Laplacian, the three reconstructions).

    OMP_NUM_THREADS=1 python benchmarks/siren_poisson.py --out docs/images/siren_poisson
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from deepgen.data.signals import Signal, photo, rows_to_values, split_targets  # noqa: E402
from deepgen.models.implicit import SIREN, SIRENConfig  # noqa: E402
from deepgen.train import TrainConfig, Trainer  # noqa: E402


def grey(signal: Signal) -> Signal:
    """The photo as one channel (ITU-R 601 luma)."""
    w = torch.tensor([0.299, 0.587, 0.114])[:, None, None]

    def sample_at(res):
        return (signal.sample_at(res) * w).sum(0, keepdim=True)

    return Signal(signal.name + "[grey]", signal.resolution, 1, sample_at, signal.source + ", grey")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--signal", default="china")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--rgb", action="store_true")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="docs/images/siren_poisson")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sig = photo(args.signal, args.size, crop=args.crop or None)
    sig = sig if args.rgb else grey(sig)
    ds = sig.to_dataset()
    c, grid = ds.info.channels, tuple(ds.info.grid)
    values, grad_t, lap_t = split_targets(ds.train.y, c)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results, images = {}, {}
    for fit in ("values", "gradient", "laplacian"):
        torch.manual_seed(0)
        model = SIREN(ds.info, SIRENConfig(fit=fit, hidden=args.hidden, layers=args.layers))
        tc = TrainConfig(steps=args.steps, batch_size=len(ds.train), lr=args.lr, seed=0, progress=False,
                         eval_every=0, ckpt_every=0, log_every=50, threads=args.threads)  # fmt: skip
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            Trainer(model, ds, tc, tmp, plots=False, quiet=True).fit()
        seconds = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            pred = model.predict(ds.train.x).clamp(0, 1)
        psnr = -10 * math.log10((pred - values).pow(2).mean().item())
        _, grad, lap = model.derivatives(ds.train.x)
        rel = lambda a, b: ((a - b).pow(2).mean() / b.pow(2).mean()).item()  # noqa: E731
        results[fit] = {"psnr_values": psnr, "relative_gradient_error": rel(grad.detach(), grad_t),
                        "seconds": round(seconds, 1)}  # fmt: skip
        if lap is not None:
            results[fit]["relative_laplacian_error"] = rel(lap.detach(), lap_t)
        images[fit] = rows_to_values(pred, grid)
        print(fit, json.dumps(results[fit]), flush=True)
        settings = {**vars(args), "grid": grid, "channels": c}
        Path(f"{out}.json").write_text(json.dumps({"settings": settings, "results": results}, indent=1))
    show = lambda t: t.permute(1, 2, 0).squeeze(-1).numpy()  # noqa: E731
    gmag = rows_to_values(grad_t.reshape(len(grad_t), c, -1).norm(dim=2), grid)
    panels = [("photo", rows_to_values(values, grid), "gray"), ("|gradient|", gmag, "magma"),
              ("Laplacian", rows_to_values(lap_t, grid), "RdBu")]  # fmt: skip
    panels += [(f"from {k}: {results[k]['psnr_values']:.1f} dB", images[k], "gray") for k in images]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.3 * len(panels), 2.6))
    for ax, (title, img, cmap) in zip(axes, panels):
        arr = show(img)
        if cmap == "RdBu":
            v = float(img.abs().quantile(0.99))
            ax.imshow(arr if arr.ndim == 2 else arr.mean(-1), cmap=cmap, vmin=-v, vmax=v)
        elif cmap == "magma":
            ax.imshow(arr if arr.ndim == 2 else arr.mean(-1), cmap=cmap, vmax=float(img.quantile(0.99)))
        else:
            ax.imshow(arr, cmap=cmap if arr.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(f"{out}.png", dpi=110)
    print(f"wrote {out}.json and {out}.png")


if __name__ == "__main__":
    main()
