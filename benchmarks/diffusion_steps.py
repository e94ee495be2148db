"""Sample quality against the number of sampling steps for a trained diffusion run (the DDIM paper's table).

For each sampler (DDPM ancestral, DDIM eta=0, Heun, DPM-Solver++(2M)) and each number of steps,
draw ``--n`` samples from the same seed and score them with FID/KID/precision/recall against the
training set's features (``deepgen-mnist`` on MNIST). The first row is the data floor: ``--n`` real
test images scored the same way, which is what FID and KID give a perfect model at this sample size
(FID's bias grows as n shrinks; KID is unbiased). The JSON is rewritten after every row, so a run
cut short keeps what it reached. The ratios the diffusion issue asks for (DDIM at 50 steps, and the
second-order sampler at 20, against 1000-step DDPM) are printed and stored at the end.

    python benchmarks/diffusion_steps.py runs/diffusion/ddpm-mnist --data-dir ../shared/data --n 500
    python benchmarks/diffusion_steps.py RUN --grid ddim:10,50 --n 100        # a quick look
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import write_result  # noqa: E402
from deepgen.data import load_dataset  # noqa: E402
from deepgen.evaluate.quality import SampleQuality, draw_samples  # noqa: E402
from deepgen.plots import save_image_grid  # noqa: E402
from deepgen.train.run import load_run  # noqa: E402

DEFAULT_GRID = "ancestral:10,20,50,100,1000;ddim:10,20,50,100,1000;heun:10,20,50,100;dpm:10,20,50,100"


def parse_grid(text: str) -> list[tuple[str, int]]:
    """``"ddim:10,50;heun:20"`` -> [("ddim", 10), ("ddim", 50), ("heun", 20)]."""
    rows = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        sampler, _, steps = part.partition(":")
        rows += [(sampler.strip(), int(s)) for s in steps.split(",") if s.strip()]
    return rows


def numbers(metrics: dict) -> dict:
    pick = ("fid", "kid", "precision", "recall")
    out = {k: metrics[k]["value"] for k in pick}
    out["fid_se"] = metrics["fid"]["se"]
    out["kid_se"] = metrics["kid"]["se"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--data-dir", default=os.environ.get("DEEPGEN_DATA"))
    ap.add_argument("--n", type=int, default=500, help="samples per row (and real images in the floor row)")
    ap.add_argument("--grid", default=DEFAULT_GRID, help="sampler:steps,...;sampler:steps,...")
    ap.add_argument("--features", default=None, help="feature network (default: the data's, deepgen-mnist on MNIST)")
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="JSON (default benchmarks/results/diffusion_steps_<data>.json)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = load_run(args.run)
    model = run.model
    spec = run.data_spec
    if args.data_dir:
        spec = dataclasses.replace(spec, data_dir=args.data_dir)
    ds = load_dataset(spec)
    quality = SampleQuality.for_dataset(ds, args.features)
    quality.n = args.n
    out = args.out or Path(__file__).parent / "results" / f"diffusion_steps_{run.info.name}.json"
    grids = Path(out).with_suffix("")
    grids.mkdir(parents=True, exist_ok=True)
    settings = {
        **vars(args),
        "model": type(model).__name__,
        "step": run.step,
        "weights": run.weights,
        "model_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in model.config.__dict__.items()},
    }
    floor = numbers(quality.data_floor(args.seed))
    rows = [{"sampler": "real test images", "steps": None, "nfe": 0, **floor}]
    print(f"{'data floor':24s} FID {floor['fid']:7.2f}  KID {floor['kid']:.4f}")
    result = {"rows": rows}
    for sampler, steps in parse_grid(args.grid):
        calls = {"n": 0}
        net = model.net
        hook = net.register_forward_hook(lambda *_, c=calls: c.__setitem__("n", c["n"] + 1))
        t0 = time.perf_counter()
        samples, rate = draw_samples(
            model, args.n, seed=args.seed, batch_size=args.batch_size, options={"sampler": sampler, "steps": steps}
        )
        seconds = time.perf_counter() - t0
        hook.remove()
        batches = -(-args.n // max(1, min(args.batch_size, -(-args.n // 5)))) + 1  # + the warm-up draw
        row = {
            "sampler": sampler,
            "steps": steps,
            "nfe": calls["n"] // batches,
            "seconds": seconds,
            "samples_per_s": rate,
            **numbers(quality.evaluate(samples, args.seed)),
        }
        rows.append(row)
        save_image_grid(samples[:64], grids / f"{sampler}_{steps}.png", nrow=8)
        print(
            f"{sampler:10s} {steps:5d} steps  NFE {row['nfe']:5d}  FID {row['fid']:7.2f} +- {row['fid_se']:.2f}  "
            f"KID {row['kid']:.4f} +- {row['kid_se']:.4f}  P {row['precision']:.3f}  R {row['recall']:.3f}  "
            f"{seconds:7.1f} s",
            flush=True,
        )
        result["ratios"] = ratios(rows)
        write_result("diffusion_steps", settings, result, out)
    for name, r in result.get("ratios", {}).items():
        print(f"{name}: {r:.3f}")
    print(f"wrote {out}")


def ratios(rows: list[dict]) -> dict:
    """FID of DDIM-50 and of the second-order samplers at 20 steps over 1000-step DDPM's FID."""
    fid = {(r["sampler"], r["steps"]): r["fid"] for r in rows}
    base = fid.get(("ancestral", 1000))
    if not base:
        return {}
    out = {}
    for key, name in (
        (("ddim", 50), "ddim50_over_ddpm1000"),
        (("heun", 20), "heun20_over_ddpm1000"),
        (("dpm", 20), "dpm20_over_ddpm1000"),
    ):
        if key in fid:
            out[name] = fid[key] / base
    return out


if __name__ == "__main__":
    main()
