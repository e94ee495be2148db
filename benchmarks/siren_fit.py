"""SIREN against ReLU and ReLU + Fourier features on a bundled photograph (issue 14): PSNR over steps.

The photo (scikit-learn's ``china.jpg``: by default its centre 256 x 256 crop at full resolution,
the issue's setting; ``--crop 0`` resamples the whole centre square to ``--size`` instead) is
fitted by networks of (nearly) the same parameter count: SIREN (sine layers, w0 = 30), a ReLU MLP
of the same shape, and ReLU MLPs on 128 random Fourier features (one per ``--fourier-scales``
sigma; Tancik et al. tune sigma per task) whose width is chosen to match the parameter count. Each
trains through deepgen's ``Trainer`` with Adam (lr 1e-4, the paper's) on full batches (every pixel
every step) for ``--steps`` steps; the PSNR on the training pixels is recorded every ``--every``
steps, and at the end the PSNR at twice the resolution (``deepgen eval``'s fidelity metric; for a
crop the 2x truth is the crop upsampled, so it only checks that nothing breaks between pixels).
Writes ``OUT.json`` as each network finishes and ``OUT.png`` (PSNR over steps, and the fits
beside the photo).

    OMP_NUM_THREADS=1 python benchmarks/siren_fit.py --out docs/images/siren_fit
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

from deepgen.data.signals import photo, rows_to_values  # noqa: E402
from deepgen.evaluate.fidelity import fidelity_metrics  # noqa: E402
from deepgen.models.implicit import SIREN, SIRENConfig  # noqa: E402
from deepgen.train import TrainConfig, Trainer  # noqa: E402
from deepgen.train.callbacks import Callback  # noqa: E402


class PSNRTrace(Callback):
    def __init__(self, every, x, y):
        self.every, self.x, self.y, self.trace = every, x, y, []

    def on_step(self, trainer, step):
        m = trainer.model
        with torch.no_grad():
            pred = torch.cat([m.predict(self.x[i : i + 65536]) for i in range(0, len(self.x), 65536)]).clamp(0, 1)
        self.trace.append((step, -10 * math.log10((pred - self.y).pow(2).mean().item())))


def params(m):
    return sum(p.numel() for p in m.parameters())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--signal", default="china")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--out", default="docs/images/siren_fit")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--crop", type=int, default=256, help="centre crop of the full photo (0: the largest square)")
    ap.add_argument("--fourier-scales", default="10", help="comma-separated sigmas of the Fourier-feature baseline")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = photo(args.signal, args.size, crop=args.crop or None).to_dataset()
    base = SIRENConfig(hidden=args.hidden, layers=args.layers)
    target = params(SIREN(ds.info, base))
    configs = {"SIREN (sine)": base, "ReLU": SIRENConfig(activation="relu", hidden=args.hidden, layers=args.layers)}
    for sigma in (float(s) for s in args.fourier_scales.split(",")):
        ff = min(
            (SIRENConfig(activation="fourier", hidden=h, layers=args.layers, fourier_scale=sigma)
             for h in range(4, 2 * args.hidden)),
            key=lambda c: abs(params(SIREN(ds.info, c)) - target),
        )  # fmt: skip
        configs[f"ReLU + Fourier features (sigma {sigma:g})"] = ff
    results, images = {}, {}
    n = len(ds.train)
    values = ds.train.y[:, : ds.info.channels]  # the rows' targets also carry the photo's derivatives
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in vars(args).items()}
    for name, cfg in configs.items():
        torch.manual_seed(0)
        model = SIREN(ds.info, cfg)
        trace = PSNRTrace(args.every, ds.train.x, values)
        tc = TrainConfig(steps=args.steps, batch_size=n, lr=args.lr, seed=0, progress=False, eval_every=0,
                         ckpt_every=0, log_every=args.every, threads=args.threads)  # fmt: skip
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            Trainer(model, ds, tc, tmp, callbacks=[trace], plots=False, quiet=True).fit()
        seconds = time.perf_counter() - t0
        model.eval()
        fid = fidelity_metrics(model, ds)
        results[name] = {
            "parameters": params(model), "hidden": cfg.hidden, "activation": cfg.activation,
            "trace": trace.trace, "final_psnr_train": trace.trace[-1][1],
            "psnr_2x": fid["psnr"]["value"], "ssim_2x": fid["ssim"]["value"], "seconds": round(seconds, 1),
        }  # fmt: skip
        images[name] = model.render(tuple(ds.info.grid))
        print(f"{name}: {results[name]['parameters']:,} parameters, train PSNR {trace.trace[-1][1]:.2f} dB, "
              f"2x PSNR {results[name]['psnr_2x']:.2f} dB, {seconds:.0f} s", flush=True)  # fmt: skip
        Path(f"{out}.json").write_text(json.dumps({"settings": meta, "results": results}, indent=1))
    panels = len(results) + 1  # the curves take two columns, then the photo and each fit
    fig = plt.figure(figsize=(2.6 * (panels + 2), 3.4))
    grid = fig.add_gridspec(1, panels + 2)
    ax = fig.add_subplot(grid[0, :2])
    for name, r in results.items():
        steps, psnr = zip(*r["trace"])
        ax.plot(steps, psnr, label=f"{name} ({r['parameters'] // 1000}k)")
    ax.set_xlabel("step")
    ax.set_ylabel("PSNR on the fitted pixels (dB)")
    ax.legend(fontsize=7, loc="lower right")
    truth = rows_to_values(values, tuple(ds.info.grid))
    for i, (name, img) in enumerate([("photo", truth), *images.items()]):
        a = fig.add_subplot(grid[0, i + 2])
        a.imshow(img.permute(1, 2, 0).numpy())
        short = name.replace("ReLU + Fourier features", "Fourier features")
        title = name if name == "photo" else f"{short}\n{results[name]['final_psnr_train']:.1f} dB"
        a.set_title(title, fontsize=8)
        a.axis("off")
    fig.tight_layout()
    fig.savefig(f"{out}.png", dpi=110)
    print(f"wrote {out}.json and {out}.png")


if __name__ == "__main__":
    main()
