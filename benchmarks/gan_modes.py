"""Mode-collapse study (issue 13): each GAN loss / stabiliser on 8gaussians and 25gaussians, over seeds.

For every (toy, setting, seed) a GAN with MLP networks is trained through deepgen's ``Trainer`` (the
path ``deepgen train`` uses) for ``--steps`` updates of batch ``--batch-size``; then 2,500 samples are
scored against the toy's exact density (:func:`deepgen.metrics.toy2d.toy_sample_quality`): modes
covered (a mode counts when it gets at least half the samples real data would give it) and the
fraction of high-quality samples (p_data(x) above the density that 99% of real samples exceed).
Seed 0 of each setting also keeps 1,000 samples at 8 points during training, for the figure of the
generator's samples over training steps. Rows go to ``OUT/runs.jsonl`` as they finish (a rerun skips
rows already there); ``--report`` writes ``OUT/table.md`` and ``OUT/modes.png``.

    OMP_NUM_THREADS=1 python benchmarks/gan_modes.py --out runs/gan_modes            # every setting
    python benchmarks/gan_modes.py --out runs/gan_modes --report --figure nonsaturating-lr2e-4,nonsaturating
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from deepgen.data import DataSpec, load_dataset
from deepgen.metrics.toy2d import toy_sample_quality
from deepgen.train import TrainConfig, Trainer, build_model
from deepgen.train.callbacks import Callback

#: name -> (registered model, model options, trainer overrides)
SETTINGS = {
    "minimax": ("gan", {"loss": "minimax"}, {}),
    "nonsaturating": ("gan", {}, {}),
    "nonsaturating-lr2e-4": ("gan", {}, {"lr": 2e-4}),  # DCGAN's learning rate: the collapsing example
    "lsgan": ("gan", {"loss": "lsgan"}, {}),
    "hinge-sn": ("gan", {"loss": "hinge", "spectral_norm": True}, {}),
    "wgan-gp": ("gan", {"loss": "wgan-gp", "d_steps": 5}, {"betas": (0.5, 0.9)}),
    "nonsaturating-r1": ("gan", {"r1": 0.1}, {}),
    "nonsaturating-r1-ema": ("gan", {"r1": 0.1}, {"ema_decay": 0.999}),  # samples from the averaged G
    "nonsaturating-ema": ("gan", {}, {"ema_decay": 0.999}),
    "unrolled-5": ("unrolled-gan", {"unroll": 5}, {}),
    "pacgan-4": ("gan", {"pack": 4}, {}),
    "lsgan-pack4": ("gan", {"loss": "lsgan", "pack": 4}, {}),
}


class Snapshots(Callback):
    """Keeps ``n`` samples (fixed z) at the given steps, from the weights sampling would use then
    (the averaged generator when the run keeps an EMA)."""

    def __init__(self, steps, n=1000):
        self.at, self.n, self.kept = set(steps), n, {}
        self.every = 1

    def on_step(self, trainer, step):
        if step in self.at:
            m = trainer.model
            m.eval()
            with trainer.eval_weights():
                self.kept[step] = m.sample(self.n, generator=torch.Generator().manual_seed(0)).tolist()
            m.train()


def run_one(toy, setting, seed, args, snapshots: bool):
    name, options, overrides = SETTINGS[setting]
    ds = load_dataset(DataSpec(toy))
    model = build_model(name, ds.info, options, seed=seed)
    train = {**type(model).train_defaults_for(ds.info, options), **overrides, **({"lr": args.lr} if args.lr else {})}
    cfg = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, seed=seed, progress=False,
        eval_every=0, log_every=max(1, args.steps // 20), ckpt_every=0, threads=1, **train,
    )  # fmt: skip
    cb = Snapshots([round(args.steps * f / 8) for f in range(1, 9)]) if snapshots else None
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        Trainer(model, ds, cfg, tmp, callbacks=[cb] if cb else [], plots=False, quiet=True).fit()
    seconds = time.perf_counter() - t0
    model.eval()
    x = model.sample(2500, generator=torch.Generator().manual_seed(1000 + seed))
    q = toy_sample_quality(toy, x)
    row = {
        "toy": toy, "setting": setting, "seed": seed, "model": name, "options": options,
        "steps": args.steps, "batch_size": args.batch_size, "lr": cfg.lr, "train_seconds": round(seconds, 1),
        "modes": q["modes"], "total_modes": q["total_modes"], "high_quality": q["high_quality"],
        "mode_kl": q["mode_kl"],
    }  # fmt: skip
    if cb:
        row["snapshots"] = cb.kept
    return row


def report(out: Path, figure: list[str]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines() if line.strip()]
    toys = sorted(
        {r["toy"] for r in rows},
        key=lambda t: ("8gaussians", "25gaussians").index(t) if t in ("8gaussians", "25gaussians") else 9,
    )
    lines = [
        "| setting | " + " | ".join(f"{t}: modes (mean, min) | {t}: HQ % (mean, min) | {t}: s/run" for t in toys) + " |"
    ]
    lines.append("|---|" + "---:|---:|---:|" * len(toys))
    for s in [s for s in SETTINGS if any(r["setting"] == s for r in rows)]:
        cells = []
        for t in toys:
            rs = [r for r in rows if r["setting"] == s and r["toy"] == t]
            if not rs:
                cells += ["", "", ""]
                continue
            m = [r["modes"] for r in rs]
            hq = [100 * r["high_quality"] for r in rs]
            total = rs[0]["total_modes"]
            cells += [
                f"{sum(m) / len(m):.1f} / {total} (min {min(m)}, n={len(rs)})",
                f"{sum(hq) / len(hq):.1f} (min {min(hq):.1f})",
                f"{sum(r['train_seconds'] for r in rs) / len(rs):.0f}",
            ]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    snaps = [r for r in rows if r.get("snapshots") and r["setting"] in figure]
    if snaps:
        snaps.sort(key=lambda r: (toys.index(r["toy"]), figure.index(r["setting"])))
        steps = sorted(int(k) for k in snaps[0]["snapshots"])
        fig, axes = plt.subplots(len(snaps), len(steps), figsize=(1.6 * len(steps), 1.7 * len(snaps)), squeeze=False)
        for i, r in enumerate(snaps):
            for j, st in enumerate(steps):
                ax = axes[i, j]
                pts = torch.tensor(r["snapshots"][str(st)])
                ax.scatter(pts[:, 0], pts[:, 1], s=0.5, alpha=0.5)
                lim = 2.0 if r["toy"] == "25gaussians" else 4
                ax.set_xlim(-lim, lim)
                ax.set_ylim(-lim, lim)
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(f"step {st}", fontsize=8)
                if j == 0:
                    ax.set_ylabel(f"{r['toy']}\n{r['setting']}", fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "modes.png", dpi=110)
        print(f"wrote {out / 'modes.png'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/gan_modes")
    ap.add_argument("--toys", default="8gaussians,25gaussians")
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=None, help="default: the model's (1e-3 for the MLP networks)")
    ap.add_argument("--report", action="store_true", help="only write table.md and modes.png from runs.jsonl")
    ap.add_argument("--figure", default="nonsaturating-lr2e-4,nonsaturating", help="settings drawn over training steps")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report:
        report(out, args.figure.split(","))
        return
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    path = out / "runs.jsonl"
    done = set()
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            done.add((r["toy"], r["setting"], r["seed"]))
    for toy in args.toys.split(","):
        for setting in args.settings.split(","):
            for seed in range(args.seeds):
                if (toy, setting, seed) in done:
                    continue
                row = run_one(toy, setting, seed, args, snapshots=seed == 0)
                with path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{toy} {setting} seed {seed}: modes {row['modes']}/{row['total_modes']}, "
                      f"HQ {100 * row['high_quality']:.1f}%, {row['train_seconds']} s", flush=True)  # fmt: skip
    report(out, args.figure.split(","))


if __name__ == "__main__":
    sys.exit(main())
