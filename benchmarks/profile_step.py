"""Where one training step of any deepgen model spends its CPU time: an operator breakdown.

Builds ``MODEL`` with ``-o KEY=VALUE`` options on ``--data``, takes one fixed batch of ``--batch``
training examples, and times the step the engine runs for models trained through ``loss``: forward
(under bf16 autocast with ``--precision bf16``, as ``deepgen train --precision bf16``), backward and
an Adam step. After ``--warmup`` untimed steps it reports the median of ``--steps`` timed steps, then
profiles ``--profile-steps`` more with ``torch.profiler`` and sums the self-CPU time per operator group:

* ``convolution``: forward and backward convolutions (oneDNN and the fallbacks);
* ``matmul``: linear layers and matrix products (addmm, mm, bmm, matmul, linear, their backward);
* ``attention``: ``scaled_dot_product_attention`` and its kernels;
* ``norm``: group, batch, layer and instance norm;
* ``activation``: ReLU (threshold), SiLU, GELU, ELU, tanh, sigmoid, clamp, softplus;
* ``optimizer``: the Adam step (``foreach=True``, so its arithmetic is the ``_foreach_*`` operators);
* ``conversion``: dtype casts and copies (``_to_copy``, ``copy_``), which bf16 autocast adds;
* ``other``.

It answers, for a model and a batch size, whether a faster step needs faster kernels (the first
three groups dominate) or less overhead around them, and whether bf16 pays on this CPU.

    OMP_NUM_THREADS=1 python benchmarks/profile_step.py realnvp --data mnist -o hidden=32, -o blocks=1 \\
        -o clamp=1.0 --batch 64 [--precision bf16] [--out benchmarks/results/profile_realnvp_mnist.json]

Models that train through their own ``train_step`` (GANs, RBMs: several optimisers or hand-written
gradients) are refused: one ``loss`` backward is not their step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(__file__))
from _common import write_result  # noqa: E402
from deepgen.config import parse_overrides  # noqa: E402
from deepgen.data import DataSpec, load_dataset  # noqa: E402
from deepgen.models.base import GenerativeModel  # noqa: E402
from deepgen.train.run import build_model  # noqa: E402

GROUPS = {  # checked in this order; the first group whose key occurs in the operator's name wins
    "attention": ("scaled_dot_product", "flash_attention", "_efficient_attention"),
    "convolution": ("convolution", "conv2d", "conv1d", "conv3d", "mkldnn_conv"),
    "optimizer": ("Optimizer.", "_foreach", "adam"),
    "matmul": ("addmm", "aten::mm", "bmm", "matmul", "linear"),
    "norm": ("group_norm", "batch_norm", "layer_norm", "instance_norm"),
    "activation": ("threshold", "relu", "silu", "gelu", "elu", "tanh", "sigmoid", "clamp", "softplus"),
    "conversion": ("_to_copy", "aten::copy_", "aten::to"),
}


def group_of(name: str) -> str:
    low = name.lower()
    return next((g for g, keys in GROUPS.items() if any(k.lower() in low for k in keys)), "other")


def breakdown(prof, calls: int, top: int = 8) -> dict:
    """Self-CPU milliseconds per call for each operator group, their shares, and the top operators."""
    groups = {g: 0.0 for g in GROUPS} | {"other": 0.0}
    ops = []
    for ev in prof.key_averages():
        ms = ev.self_cpu_time_total / 1e3 / calls
        groups[group_of(ev.key)] += ms
        ops.append((ms, ev.key))
    total = sum(groups.values())
    ops.sort(reverse=True)
    return {
        "ms_per_step": total,
        "groups_ms": groups,
        "groups_share": {g: v / total for g, v in groups.items()},
        "top_operators_ms": {name: ms for ms, name in ops[:top]},
    }


def step_fn(model: GenerativeModel, x: torch.Tensor, y, precision: str):
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, foreach=True)  # its arithmetic: _foreach_* ops
    bf16 = precision == "bf16"

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.loss(x, y)["loss"]
        loss.float().backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--data", required=True)
    ap.add_argument("--data-dir", default=os.environ.get("DEEPGEN_DATA"))
    ap.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="model option (repeatable)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="timed steps (median)")
    ap.add_argument("--profile-steps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="JSON path (default: print only)")
    args = ap.parse_args()
    if min(args.batch, args.steps, args.profile_steps, args.threads) < 1 or args.warmup < 0:
        ap.error("--batch, --steps, --profile-steps and --threads must be positive, --warmup >= 0")

    torch.set_num_threads(args.threads)
    ds = load_dataset(DataSpec(args.data, data_dir=args.data_dir))
    options = parse_overrides(args.option)
    model = build_model(args.model, ds.info, options, seed=args.seed)
    if type(model).train_step is not GenerativeModel.train_step:  # the engine's test for the default step
        ap.error(f"{args.model} trains through its own train_step (several optimisers or hand-written gradients)")
    model.train()
    x = ds.train.x[: args.batch]
    y = ds.train.y[: args.batch] if model.conditional and ds.train.y is not None else None
    step = step_fn(model, x, y, args.precision)
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.profile_steps):
            step()
    res = breakdown(prof, args.profile_steps)
    res["median_ms_per_step"] = 1e3 * statistics.median(times)
    res["examples_per_s"] = args.batch / statistics.median(times)
    res["params"] = sum(p.numel() for p in model.parameters())
    print(
        f"{args.model} on {ds.info.describe()}, batch {args.batch}, {args.precision}, {args.threads} thread(s): "
        f"{res['median_ms_per_step']:.1f} ms/step (median of {args.steps}), {res['examples_per_s']:.0f} examples/s"
    )
    print("group        share   ms/step (profiled)")
    for g, share in sorted(res["groups_share"].items(), key=lambda kv: -kv[1]):
        print(f"{g:12s} {share:6.1%} {res['groups_ms'][g]:9.1f}")
    print("top operators (self CPU, ms/step):")
    for name, ms in res["top_operators_ms"].items():
        print(f"  {name:44s} {ms:9.1f}")
    if args.out:
        settings = {k: v for k, v in vars(args).items() if k != "out"}
        print(f"wrote {write_result('profile_step', settings, res, args.out)}")


if __name__ == "__main__":
    main()
