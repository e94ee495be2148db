"""U-Net speed against diffusers: deepgen's UNet vs diffusers' UNet2DModel, same architecture, one run.

What is raced (28x28x1 images, float32, CPU, ``--threads`` threads), for each of ``--attention``:

* ``attention``: ``UNet2DModel(sample_size=28, in_channels=1, out_channels=1, block_out_channels=(32, 64),
  layers_per_block=1, down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D",
  "UpBlock2D"))`` (diffusers' default block types cut to two levels; its middle block has attention), and
  deepgen's ``UNet`` built from :func:`deepgen.nn.unet.diffusers_equivalent` (attention at level 1 and in
  the middle, 8 channels per head);
* ``no-attention``: ``DownBlock2D`` / ``UpBlock2D`` only and ``add_attention=False`` on diffusers' side,
  no attention anywhere on deepgen's.

Both networks have the same parameter count, and deepgen's is given diffusers' weights
(:func:`deepgen.nn.unet.load_diffusers_weights`), so the two compute the same function: the record
holds the largest output difference (float32 round-off) as the proof that the architectures are one.

What is timed, for each configuration (A = deepgen, B = diffusers), after ``--warmup`` untimed blocks:

* **train**: one DDPM training step on a fixed seeded batch of ``--batch`` (64) noisy images ``x_t``,
  timesteps ``t`` in 0..999 and noise ``eps``: ``zero_grad``, ``mse(net(x_t, t), eps)``, ``backward``,
  ``torch.optim.Adam(lr=1e-4)`` step, with torch's default Adam on both sides (the Adam step is the
  same arithmetic on the same parameter shapes, so it adds the same time to both);
* **sample**: DDIM sampling (Song et al. 2021, arXiv:2010.02502) of ``--samples`` (16) images in
  ``--ddim-steps`` (50) steps under ``torch.no_grad()``: seeded N(0, I) noise, then per step one network
  evaluation and diffusers' ``DDIMScheduler.step`` (eta 0), one scheduler per side, identical settings,
  so the update arithmetic is identical and only the networks differ.

Each timing is a block of ``--block`` training steps or one whole sampling run, with the garbage
collector off inside it; blocks alternate A B A B ... ``--reps`` times, so a machine that gets busier
slows both. ``deepgen_ms`` / ``diffusers_ms`` are median milliseconds per training step or per sampling
run; ``ratio`` is ``median(A) / median(B)``; ``pair_ratio_median`` is the median of the per-rep ratios
``A_i / B_i`` (both sides of a pair saw the same load), with its quartiles. Below 1 deepgen is faster;
the bar is <= 0.8 (issue 11: deepgen at most 0.8x diffusers' time). Only the ratios travel between machines.

    python benchmarks/unet_speed.py [--reps 10] [--warmup 2] [--threads 1] [--attention both] \\
        [--out benchmarks/results/unet_speed.json]
    python benchmarks/unet_speed.py --quick     # a smoke test: 2 reps, 5 DDIM steps, not a measurement
    python benchmarks/unet_speed.py --compile   # both networks through torch.compile -> unet_speed_compile.json

Writes the JSON after every configuration (an interrupted run keeps what it measured) with the command,
commit, date, machine, torch and diffusers versions and the settings. ``--quick`` writes to
``benchmarks/results/unet_speed_quick.json`` unless ``--out`` is given, so it never replaces a real record.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import diffusers
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, UNet2DModel

sys.path.insert(0, os.path.dirname(__file__))
from _common import RESULTS, race, write_result  # noqa: E402
from deepgen.nn.unet import UNet, diffusers_equivalent, load_diffusers_weights  # noqa: E402

CONFIGS = {"attention": True, "no-attention": False}
TARGET = 0.8  # issue 11's bar: deepgen's time <= 0.8x diffusers'


def build(attention: bool, seed: int) -> tuple[UNet, UNet2DModel, dict]:
    """(deepgen's UNet, diffusers' UNet2DModel) with the same weights, and a record of how they were built."""
    ours_cfg, theirs_kwargs = diffusers_equivalent(attention)
    torch.manual_seed(seed)
    theirs = UNet2DModel(**theirs_kwargs)
    ours = UNet(ours_cfg, zero_init=False)
    load_diffusers_weights(ours, theirs.state_dict())
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    t = torch.tensor([0.0, 10.0, 500.0, 999.0])
    with torch.no_grad():
        diff = (ours(x, t) - theirs(x, t).sample).abs().max().item()
    record = {
        "deepgen": {"build": f"UNet({ours_cfg})", "params": sum(p.numel() for p in ours.parameters())},
        "diffusers": {
            "build": f"UNet2DModel(**{theirs_kwargs})",
            "params": sum(p.numel() for p in theirs.parameters()),
        },
        "same_weights_max_abs_output_diff": diff,
    }
    return ours, theirs, record


def train_step_fn(net: torch.nn.Module, forward: Callable, batch: tuple, steps: int) -> Callable[[], None]:
    """``steps`` DDPM training steps (eps-prediction MSE, Adam) on one fixed batch."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    x_t, t, eps = batch

    def run():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            F.mse_loss(forward(x_t, t), eps).backward()
            opt.step()

    return run


def sample_fn(forward: Callable, n: int, steps: int, seed: int) -> Callable[[], torch.Tensor]:
    """DDIM (eta 0) with diffusers' scheduler: ``steps`` network evaluations on ``n`` images."""
    scheduler = DDIMScheduler(num_train_timesteps=1000)
    scheduler.set_timesteps(steps)

    def run():
        x = torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            for t in scheduler.timesteps:
                x = scheduler.step(forward(x, t), t, x).prev_sample
        return x

    return run


def run_config(name: str, args) -> dict:
    ours, theirs, result = build(CONFIGS[name], args.seed)
    result["config"] = name
    print(
        f"\n== {name}: deepgen {result['deepgen']['params']} params, diffusers {result['diffusers']['params']} "
        f"params; same weights, max |output difference| {result['same_weights_max_abs_output_diff']:.2e}"
    )
    g = torch.Generator().manual_seed(args.seed)
    batch = (
        torch.randn(args.batch, 1, 28, 28, generator=g),
        torch.randint(0, 1000, (args.batch,), generator=g).float(),
        torch.randn(args.batch, 1, 28, 28, generator=g),
    )

    def theirs_forward(x, t):
        return theirs(x, t).sample

    ours_forward = ours
    if args.compile:  # both sides, same settings; the first (warm-up) call of each pays the compilation
        ours_forward, theirs_forward = torch.compile(ours), torch.compile(theirs_forward)

    contests = {
        "train": (
            train_step_fn(ours, ours_forward, batch, args.block),
            train_step_fn(theirs, theirs_forward, batch, args.block),
            args.block,
        ),
        "sample": (
            sample_fn(ours_forward, args.samples, args.ddim_steps, args.seed),
            sample_fn(theirs_forward, args.samples, args.ddim_steps, args.seed),
            1,
        ),
    }
    for kind, (a, b, per_block) in contests.items():
        r = race(a, b, args.reps, args.warmup, per_block, peer="diffusers")
        r["target"], r["meets_target"] = TARGET, r["pair_ratio_median"] <= TARGET
        result[kind] = r
        unit = "ms/step" if kind == "train" else f"ms/{args.ddim_steps}-step run"
        print(
            f"  {kind:6s} deepgen {r['deepgen_ms']:8.1f}  diffusers {r['diffusers_ms']:8.1f} {unit}  "
            f"ratio {r['ratio']:.3f}  pair-ratio median {r['pair_ratio_median']:.3f} "
            f"[{r['pair_ratio_q1_q3'][0]:.3f}, {r['pair_ratio_q1_q3'][1]:.3f}]  "
            f"(<= {TARGET}: {'yes' if r['meets_target'] else 'no'})"
        )
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=10, help="timed blocks per side and task")
    ap.add_argument("--warmup", type=int, default=2, help="untimed blocks per side first")
    ap.add_argument("--block", type=int, default=3, help="training steps per timed block")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64, help="training batch")
    ap.add_argument("--samples", type=int, default=16, help="images per DDIM sampling run")
    ap.add_argument("--ddim-steps", type=int, default=50)
    ap.add_argument("--attention", choices=("both", *CONFIGS), default="both")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--compile", action="store_true", help="torch.compile both networks (default settings) before timing them"
    )
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 reps, 1 warmup, 1 step blocks, 5 DDIM steps")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/unet_speed.json)")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.warmup, args.block, args.ddim_steps = 2, 1, 1, 5
        args.out = args.out or RESULTS / "unet_speed_quick.json"
    if args.compile:
        args.out = args.out or RESULTS / "unet_speed_compile.json"
    if min(args.reps, args.block, args.batch, args.samples, args.ddim_steps) < 1 or args.warmup < 0:
        ap.error("--reps, --block, --batch, --samples and --ddim-steps must be positive, --warmup >= 0")

    torch.set_num_threads(args.threads)
    configs = list(CONFIGS) if args.attention == "both" else [args.attention]
    settings = {
        "threads": torch.get_num_threads(),
        "quick": args.quick,
        "batch": args.batch,
        "samples": args.samples,
        "ddim_steps": args.ddim_steps,
        "reps": args.reps,
        "warmup": args.warmup,
        "block": args.block,
        "configs": configs,
        "image": [1, 28, 28],
        "optimizer": "torch.optim.Adam(lr=1e-4), torch defaults, both sides",
        "train_data": "fixed seeded batch: x_t, eps ~ N(0, I), t uniform in 0..999",
        "sampler": "diffusers DDIMScheduler(num_train_timesteps=1000), eta 0, one per side",
        "seed": args.seed,
        "compile": args.compile,
        "versions": {"torch": str(torch.__version__), "diffusers": diffusers.__version__},
    }
    print(
        f"torch {torch.__version__}, diffusers {diffusers.__version__}; {settings['threads']} thread(s), "
        f"train batch {args.batch} x {args.block} steps per block, DDIM {args.ddim_steps} steps x {args.samples} "
        f"images, {args.reps} reps" + (" (--quick: a smoke test, not a measurement)" if args.quick else "")
    )
    results = []
    for name in configs:
        results.append(run_config(name, args))
        path = write_result("unet_speed", settings, results, args.out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
