"""Where deepgen's U-Net spends its time on CPU: the operator breakdown behind docs/benchmarks.md 14.1.

The network is :func:`deepgen.nn.unet.diffusers_equivalent` (the configuration raced against
diffusers' ``UNet2DModel`` by ``unet_speed.py``), with or without attention. Profiled with
``torch.profiler`` on ``--threads`` threads, after two warm-up calls:

* ``train``: ``--steps`` training steps (forward, MSE against noise, backward, Adam) at batch 64;
* ``sample``: ``--steps`` forward passes at batch 16 under ``torch.no_grad()`` (DDIM's per-step work),
  in the default (NCHW) memory layout and in channels-last, where oneDNN's convolutions are faster
  and the other operators may not be.

For each it records the total self-CPU time and the share of the operator groups that matter:
convolutions (forward and backward), attention (the fused kernel, forward and backward), group
norm, SiLU, and everything else. Then two kernel-level alternatives, timed alone (median of
``--steps`` + 2 calls): the attention of the 14 x 14 level (batch 64, 8 heads of 8 channels, 196
positions) by the flash kernel against two batched matrix products and a softmax, forward and
forward+backward; and a 64 -> 64 3 x 3 convolution at 28 x 28 (batch 64) in NCHW and channels-last.

    OMP_NUM_THREADS=1 python benchmarks/unet_profile.py   # -> benchmarks/results/unet_profile.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(__file__))
from _common import write_result  # noqa: E402
from deepgen.nn.unet import UNet, diffusers_equivalent  # noqa: E402

GROUPS = {
    "convolution": ("convolution",),
    "attention": ("scaled_dot_product", "flash_attention"),
    "group_norm": ("group_norm",),
    "silu": ("silu",),
}


def breakdown(prof) -> dict:
    """Self-CPU milliseconds per operator group, and the total."""
    out = {g: 0.0 for g in GROUPS} | {"other": 0.0}
    for ev in prof.key_averages():
        ms = ev.self_cpu_time_total / 1e3
        group = next((g for g, keys in GROUPS.items() if any(k in ev.key for k in keys)), "other")
        out[group] += ms
    total = sum(out.values())
    return {
        "total_ms": total,
        **{f"{g}_ms": v for g, v in out.items()},
        **{f"{g}_share": v / total for g, v in out.items()},
    }


def calls(attention: bool, layout: str):
    """The two profiled calls, ``train`` and ``sample``, on a fresh seeded network in ``layout``."""
    cfg, _ = diffusers_equivalent(attention)
    fmt = torch.channels_last if layout == "channels-last" else torch.contiguous_format
    torch.manual_seed(0)
    net = UNet(cfg).to(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 28, 28, generator=g).to(memory_format=fmt)
    t = torch.randint(0, 1000, (64,), generator=g).float()
    eps = torch.randn(64, 1, 28, 28, generator=g)
    xs, ts = x[:16].contiguous(memory_format=fmt), t[:16]

    def train():
        opt.zero_grad()
        F.mse_loss(net(x, t), eps).backward()
        opt.step()

    def sample():
        with torch.no_grad():
            net(xs, ts)

    return {"train": train, "sample": sample}


def median_ms(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def kernels(reps: int) -> dict:
    """Alternative kernels for the two operators that dominate (see the module docstring)."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(64, 8, 196, 8, generator=g, requires_grad=True) for _ in range(3))

    def flash():
        return F.scaled_dot_product_attention(q, k, v)

    def matmuls():
        return torch.matmul(torch.softmax(torch.matmul(q * 8**-0.5, k.transpose(-1, -2)), -1), v)

    out = {}
    for name, fn in (("flash", flash), ("matmul_softmax", matmuls)):
        with torch.no_grad():
            out[f"attention_{name}_forward_ms"] = median_ms(fn, reps)
        out[f"attention_{name}_forward_backward_ms"] = median_ms(lambda fn=fn: fn().sum().backward(), reps)
    x = torch.randn(64, 64, 28, 28, generator=g)
    w = torch.randn(64, 64, 3, 3, generator=g)
    for layout, fmt in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
        xf, wf = x.contiguous(memory_format=fmt), w.contiguous(memory_format=fmt)
        with torch.no_grad():
            out[f"conv64_28x28_{layout}_forward_ms"] = median_ms(lambda xf=xf, wf=wf: F.conv2d(xf, wf, padding=1), reps)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for attention in (True, False):
        for layout in ("nchw", "channels-last"):
            for what, fn in calls(attention, layout).items():
                for _ in range(2):
                    fn()
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    for _ in range(args.steps):
                        fn()
                row = {"attention": attention, "layout": layout, "what": what, **breakdown(prof)}
                row["ms_per_call"] = row["total_ms"] / args.steps
                rows.append(row)
                print(
                    f"{'attention' if attention else 'no attention':12s} {layout:13s} {what:6s} "
                    f"{row['ms_per_call']:8.1f} ms/call  conv {row['convolution_share']:.0%}  "
                    f"attn {row['attention_share']:.0%}  gn {row['group_norm_share']:.0%}  "
                    f"silu {row['silu_share']:.0%}  other {row['other_share']:.0%}",
                    flush=True,
                )
    kern = kernels(args.steps + 2)
    for key, ms in kern.items():
        print(f"{key:48s} {ms:8.1f} ms", flush=True)
    write_result("unet_profile", vars(args), {"rows": rows, "kernels": kern}, args.out)


if __name__ == "__main__":
    main()
