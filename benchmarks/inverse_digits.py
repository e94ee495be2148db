"""Inverse problems on the 8x8 digits: each task, each model's methods, against the no-model baseline.

For each model (``--models``; each trained with its defaults for ``--steps`` steps, seed 0, one
thread) and each task (``--tasks``), ``--n`` test images are degraded and restored by every method
the model offers (:mod:`deepgen.apps.inverse`): ``observed`` (no model: the observation made
consistent with the training mean), ``complete`` (autoregressive models, inpainting), ``latent``
(MAP through decode: VAEs, flows), ``edit`` (diffusion: SDEdit rounds with projection; for
denoising one round at ``--denoise-strength``, as repeated re-noising only loses the input),
``guided`` (DDPM: data consistency after every step of ``--guided-sampler``, all timesteps unless
``--guided-steps``). ``--methods`` keeps some; ``--cache DIR`` keeps each trained model's weights
there and reuses them when the model, steps and seed match.
Reported: PSNR (dB, all pixels and the unobserved ones) and the deepgen-digits classifier's label
agreement with the originals. Posterior samples (complete, edit) trade PSNR for realism: a perfect
sampler's expected squared error is twice that of the posterior mean, so compare them by label
agreement, and the MAP/baseline rows by PSNR.

    OMP_NUM_THREADS=1 python benchmarks/inverse_digits.py   # -> benchmarks/results/inverse_digits.json
    OMP_NUM_THREADS=1 python benchmarks/inverse_digits.py --models ddpm --methods observed,guided --cache runs/inv
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import trained_with_defaults, write_result  # noqa: E402
from deepgen.apps.inverse import Degradation, available_methods, restoration_metrics, restore  # noqa: E402
from deepgen.data import DataSpec, load_dataset  # noqa: E402
from deepgen.metrics.features import load_feature_network  # noqa: E402
from deepgen.plots import save_image_grid  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=lambda t: t.split(","), default=["vae", "realnvp", "pixelcnn", "ddpm"])
    ap.add_argument(
        "--tasks", type=lambda t: t.split(","), default=["inpaint:bottom-half", "denoise:0.2", "downsample:2"]
    )
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--latent-steps", type=int, default=300)
    ap.add_argument("--strength", type=float, default=0.5)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--denoise-strength", type=float, default=0.15)
    ap.add_argument("--edit-steps", type=int, default=50, help="DDIM steps over the full schedule")
    ap.add_argument("--guided-sampler", default="ancestral", choices=["ancestral", "ddim"])
    ap.add_argument("--guided-steps", type=int, help="sampler steps of the guided method (default: every timestep)")
    ap.add_argument("--guided-resample", type=int, default=1, help="guided: RePaint resampling per step")
    ap.add_argument("--methods", type=lambda t: t.split(","), help="only these methods (default: all offered)")
    ap.add_argument("--cache", help="directory for trained weights, reused when model, steps and seed match")
    ap.add_argument("--grid", help="write one PNG per model and task under this prefix")
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset(DataSpec("digits"))
    x, labels = ds.test.x[: args.n], ds.test.y[: args.n]
    mean = ds.train.x.float().mean(0)
    judge = load_feature_network("deepgen-digits")
    rows = []
    for name in args.models:
        model, train_s = trained_with_defaults(name, ds, args.steps, args.cache)
        for task in args.tasks:
            d = Degradation.parse(task, ds.info.shape, ds.info.levels, torch.Generator().manual_seed(0))
            y = d.observe(x, torch.Generator().manual_seed(0))
            shown = [x[:10], y[:10] if d.kind != "inpaint" else torch.where(d.mask, y, 0.5)[:10]]
            for method in available_methods(model, d):
                if args.methods and method not in args.methods:
                    continue
                if method == "observed" and rows and any(r["task"] == task and r["method"] == "observed" for r in rows):
                    continue  # the baseline does not depend on the model
                kw = {"mean": mean, "generator": torch.Generator().manual_seed(0), "steps": args.latent_steps}
                if method == "edit":
                    kw["options"] = {"sampler": "ddim", "steps": args.edit_steps}
                    kw["strength"], kw["rounds"] = (
                        (args.denoise_strength, 1) if d.kind == "denoise" else (args.strength, args.rounds)
                    )
                if method == "guided":
                    kw["options"] = {"sampler": args.guided_sampler}
                    if args.guided_steps:
                        kw["options"]["steps"] = args.guided_steps
                    kw["resample"] = args.guided_resample
                t0 = time.perf_counter()
                r = restore(model, y, d, method, **kw).detach()
                m = restoration_metrics(r, x, d, labels, judge)
                row = {"model": "(none)" if method == "observed" else name, "task": task, "method": method,
                       "train_s": train_s, "restore_s": time.perf_counter() - t0, **m}  # fmt: skip
                rows.append(row)
                shown.append(r[:10])
                hid = f"  unobserved {m['psnr_unobserved']['value']:6.2f}" if "psnr_unobserved" in m else ""
                print(
                    f"{name:10s} {task:20s} {method:9s} PSNR {m['psnr_all']['value']:6.2f}{hid}  "
                    f"labels {m['label_agreement']['value']:.3f}  ({row['restore_s']:.1f} s)",
                    flush=True,
                )
            if args.grid:
                w = ds.info.shape[-1]
                shown = [
                    s.repeat_interleave(w // s.shape[-1], -2).repeat_interleave(w // s.shape[-1], -1) for s in shown
                ]
                save_image_grid(torch.cat(shown), f"{args.grid}_{name}_{task.replace(':', '-')}.png", nrow=10)
        write_result("inverse_digits", vars(args), {"rows": rows}, args.out)


if __name__ == "__main__":
    main()
