"""Flow speed against peer libraries: deepgen vs normflows and zuko, same architecture, same batch, one run.

What is raced (2-D data, batch ``--batch``, float32, CPU, ``--threads`` threads):

* ``realnvp-normflows`` and ``realnvp-zuko``: RealNVP, ``--layers`` (8) affine couplings whose
  conditioners are MLPs ``1 -> 64 -> 64 -> 2`` (ReLU), over a fixed N(0, I) base.

  - deepgen: ``Compose(*[AffineCoupling(2, parity=i % 2, hidden=(64, 64)) for i in range(8)])`` over
    ``StandardNormal((2,))`` (alternating parity instead of a permutation layer).
  - normflows: its README's 2-D RealNVP, ``AffineCouplingBlock(nets.MLP([1, 64, 64, 2], init_zeros=True))``
    followed by ``Permute(2, mode="swap")``, 8 times, over ``DiagGaussian(2, trainable=False)`` (the
    README's base is trainable: 4 more parameters; fixed here to match the other two).
  - zuko: ``zuko.flows.RealNVP(2, transforms=8, hidden_features=(64, 64))`` (zuko 1.6 has it: an alias of
    ``NICE`` with affine ``GeneralCouplingTransform`` layers and alternating checkered masks).

* ``nsf-zuko``: neural spline flow with ``--bins`` (8) bins. ``zuko.flows.NSF(2, bins=8)`` defaults to
  ``--nsf-transforms`` (3) *fully autoregressive* transforms (MADE conditioners 2 -> 64 -> 64 -> 2 * 23,
  orders alternating natural/reversed, spline on [-5, 5], no linear layers in between). deepgen is
  built to match layer for layer: ``MaskedSplineAutoregressive(2, (64, 64), num_bins=8, bound=5.0,
  order="natural" / "reverse")`` x 3 (not the named ``nsf`` model, which adds LU linear layers).

What is timed, for each pair (A = deepgen, B = the peer), after ``--warmup`` untimed blocks:

* **train**: one training step = ``zero_grad``, mean NLL of a fixed seeded batch, ``backward``, Adam step
  (each model has its own Adam). ``--optimizer deepgen`` (default) gives deepgen's side the Adam its
  trainer builds (torch's fused kernel, :func:`deepgen.models.base.build_optimizer`) and the peer torch's default
  (a per-tensor loop on CPU): what a user of each library gets. ``--optimizer same`` gives both
  torch's default, to isolate the flows themselves;
* **sample**: ``--batch`` samples from the base pushed through the inverse, under ``no_grad``
  (deepgen ``flow.inverse(base.sample(n))[0]``, normflows ``model.sample(n)``, zuko ``flow().sample((n,))``;
  deepgen and normflows compute the log-determinants on the way as their APIs always do, zuko does not).

Each timing is a block of ``--block`` consecutive steps (so timer resolution is irrelevant), with the
garbage collector off inside the block; blocks alternate A B A B ... ``--reps`` times, so a machine that
gets busier slows both. Per-step time = block time / ``--block``.

How to read it: ``deepgen_ms`` / ``peer_ms`` are median per-step milliseconds; ``ratio`` is
``median(deepgen) / median(peer)``; ``pair_ratio_median`` is the median of the per-rep ratios
``A_i / B_i`` of adjacent blocks (the robust number on a noisy machine: both sides of a pair saw the
same load), with its quartiles. Below 1 deepgen is faster; the flows issue's target is <= 0.8 on
training. Absolute times depend on the machine and its load; only the ratios travel. The batch is
small (256 x 2), so these runs measure per-operator overhead (Python, dispatcher, autograd) far more
than arithmetic: an extra tiny op costs as much as a 64 x 64 matmul.

``--profile`` skips the race. It runs ``torch.profiler`` on every contender's training step (phases
labelled: nll forward, backward, optimizer step) and sampling, and prints for each the aten operator
calls per step and each phase's share; then the top operators by self CPU time of deepgen's models
(``--profile-peers``: the peers' too), and a cProfile of deepgen's training step (Python functions by
own time), to say where the time goes.

    python benchmarks/flow_speed.py [--reps 30] [--warmup 5] [--threads 1] [--batch 256] \\
        [--out benchmarks/results/flow_speed.json]
    python benchmarks/flow_speed.py --profile

Writes the JSON after every pair (so an interrupted run keeps what it measured), with the command,
commit, machine, torch, normflows and zuko versions and the settings.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import os
import pstats
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import normflows as nf
import torch
import zuko
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, os.path.dirname(__file__))
from _common import race, write_result  # noqa: E402
from deepgen.bijectors import (  # noqa: E402
    AffineCoupling,
    Compose,
    MaskedSplineAutoregressive,
    StandardNormal,
)
from deepgen.models.base import build_optimizer  # noqa: E402
from deepgen.train.config import TrainConfig  # noqa: E402

PAIRS = ("realnvp-normflows", "realnvp-zuko", "nsf-zuko")
TARGET = 0.8  # the flows issue: deepgen's step time <= 0.8 x the peer's
PHASES = ("nll forward", "backward", "optimizer step")  # record_function labels of a profiled training step


# -- contenders ----------------------------------------------------------------------------------


@dataclass
class Contender:
    """One flow under test: its parameters, a mean-NLL function and a sampler."""

    name: str
    build: str  # how it was built, for the record
    module: nn.Module
    nll: Callable[[torch.Tensor], torch.Tensor]  # (B, 2) -> scalar mean negative log-likelihood
    sample: Callable[[int], torch.Tensor]  # n -> (n, 2)

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())


def _deepgen(name: str, build: str, flow: Compose) -> Contender:
    base = StandardNormal((2,))

    def nll(x):
        z, log_det = flow(x)
        return -(base.log_prob(z) + log_det).mean()

    def sample(n):
        return flow.inverse(base.sample(n))[0]

    return Contender(name, build, nn.ModuleDict({"flow": flow, "base": base}), nll, sample)


def deepgen_realnvp(layers: int, hidden: tuple[int, ...]) -> Contender:
    flow = Compose(*[AffineCoupling(2, parity=i % 2, hidden=hidden) for i in range(layers)])
    build = f"Compose(*[AffineCoupling(2, parity=i % 2, hidden={hidden}) for i in range({layers})]), StandardNormal"
    return _deepgen("deepgen RealNVP", build, flow)


def deepgen_nsf(transforms: int, hidden: tuple[int, ...], bins: int) -> Contender:
    orders = ("natural", "reverse")  # zuko's MAF/NSF: ascending, descending, ascending, ...
    flow = Compose(
        *[
            MaskedSplineAutoregressive(2, hidden, num_bins=bins, bound=5.0, order=orders[i % 2])
            for i in range(transforms)
        ]
    )
    build = (
        f"Compose(*[MaskedSplineAutoregressive(2, {hidden}, num_bins={bins}, bound=5.0, "
        f"order=natural/reverse) for i in range({transforms})]), StandardNormal"
    )
    return _deepgen("deepgen NSF", build, flow)


def normflows_realnvp(layers: int, hidden: tuple[int, ...]) -> Contender:
    flows = []
    for _ in range(layers):
        flows.append(nf.flows.AffineCouplingBlock(nf.nets.MLP([1, *hidden, 2], init_zeros=True)))
        flows.append(nf.flows.Permute(2, mode="swap"))
    model = nf.NormalizingFlow(nf.distributions.base.DiagGaussian(2, trainable=False), flows)
    build = (
        f"NormalizingFlow(DiagGaussian(2, trainable=False), [AffineCouplingBlock(MLP([1, *{hidden}, 2], "
        f"init_zeros=True)), Permute(2, 'swap')] x {layers})"
    )
    return Contender("normflows RealNVP", build, model, model.forward_kld, lambda n: model.sample(n)[0])


def _zuko(name: str, build: str, flow: zuko.flows.Flow) -> Contender:
    return Contender(name, build, flow, lambda x: -flow().log_prob(x).mean(), lambda n: flow().sample((n,)))


def zuko_realnvp(layers: int, hidden: tuple[int, ...]) -> Contender:
    flow = zuko.flows.RealNVP(2, transforms=layers, hidden_features=hidden)
    return _zuko("zuko RealNVP", f"zuko.flows.RealNVP(2, transforms={layers}, hidden_features={hidden})", flow)


def zuko_nsf(transforms: int, hidden: tuple[int, ...], bins: int) -> Contender:
    flow = zuko.flows.NSF(2, transforms=transforms, hidden_features=hidden, bins=bins)
    build = f"zuko.flows.NSF(2, transforms={transforms}, hidden_features={hidden}, bins={bins})"
    return _zuko("zuko NSF", build, flow)


def make_pair(pair: str, args) -> tuple[Contender, Contender]:
    """(deepgen, peer) for ``pair``, each built from the same seed."""
    builders = {
        "realnvp-normflows": (
            lambda: deepgen_realnvp(args.layers, args.hidden),
            lambda: normflows_realnvp(args.layers, args.hidden),
        ),
        "realnvp-zuko": (
            lambda: deepgen_realnvp(args.layers, args.hidden),
            lambda: zuko_realnvp(args.layers, args.hidden),
        ),
        "nsf-zuko": (
            lambda: deepgen_nsf(args.nsf_transforms, args.hidden, args.bins),
            lambda: zuko_nsf(args.nsf_transforms, args.hidden, args.bins),
        ),
    }
    out = []
    for build in builders[pair]:
        torch.manual_seed(args.seed)
        out.append(build())
    return out[0], out[1]


def toy_data(n: int, seed: int) -> torch.Tensor:
    """(n, 2) seeded mixture of 8 Gaussians on a circle of radius 2 (std 0.25): inside both spline bounds."""
    g = torch.Generator().manual_seed(seed)
    angle = torch.randint(0, 8, (n,), generator=g).float() * (2 * math.pi / 8)
    centres = 2.0 * torch.stack([angle.cos(), angle.sin()], 1)
    return centres + 0.25 * torch.randn(n, 2, generator=g)


# -- timing --------------------------------------------------------------------------------------


def train_steps(c: Contender, opt: torch.optim.Optimizer, x: torch.Tensor, steps: int) -> float:
    """``steps`` training steps on the batch ``x``; returns the last loss."""
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = c.nll(x)
        loss.backward()
        opt.step()
    return float(loss.detach())


def sample_steps(c: Contender, n: int, steps: int) -> None:
    with torch.no_grad():
        for _ in range(steps):
            c.sample(n)


def run_pair(pair: str, args, x: torch.Tensor) -> dict:
    dg, peer = make_pair(pair, args)
    opts = {
        dg.name: build_optimizer(dg.module.parameters(), TrainConfig(lr=args.lr))
        if args.optimizer == "deepgen"
        else torch.optim.Adam(dg.module.parameters(), lr=args.lr),
        peer.name: torch.optim.Adam(peer.module.parameters(), lr=args.lr),
    }
    print(f"\n== {pair}: {dg.name} ({dg.params} params) vs {peer.name} ({peer.params} params)")
    with torch.no_grad():
        start = {c.name: float(c.nll(x)) for c in (dg, peer)}
    last: dict[str, float] = {}

    def trainer(c: Contender) -> Callable[[], None]:
        def step():
            last[c.name] = train_steps(c, opts[c.name], x, args.block)

        return step

    result = {
        "pair": pair,
        "deepgen": {"name": dg.name, "build": dg.build, "params": dg.params},
        "peer": {"name": peer.name, "build": peer.build, "params": peer.params},
    }

    def sampler(c: Contender) -> Callable[[], None]:
        return lambda: sample_steps(c, args.samples, args.block)

    for kind, a, b in (("train", trainer(dg), trainer(peer)), ("sample", sampler(dg), sampler(peer))):
        r = race(a, b, args.reps, args.warmup, args.block)
        r["target"] = TARGET
        r["meets_target"] = r["pair_ratio_median"] <= TARGET
        result[kind] = r
        print(
            f"  {kind:6s} deepgen {r['deepgen_ms']:7.3f} ms  peer {r['peer_ms']:7.3f} ms  "
            f"ratio {r['ratio']:.3f}  pair-ratio median {r['pair_ratio_median']:.3f} "
            f"[{r['pair_ratio_q1_q3'][0]:.3f}, {r['pair_ratio_q1_q3'][1]:.3f}]  "
            f"(<= {TARGET}: {'yes' if r['meets_target'] else 'no'})"
        )
    result["nll_start"] = {"deepgen": start[dg.name], "peer": start[peer.name]}
    result["nll_end"] = {"deepgen": last[dg.name], "peer": last[peer.name]}
    for name in (dg.name, peer.name):
        if not math.isfinite(last[name]):
            print(f"  warning: {name}'s loss is {last[name]} after training; its timings may be unrepresentative")
    return result


# -- profiling -----------------------------------------------------------------------------------


def profiled_train_step(c: Contender, opt: torch.optim.Optimizer, x: torch.Tensor) -> None:
    """One training step with its phases labelled for the profiler (CPU backward runs on this thread)."""
    with record_function(PHASES[0]):
        opt.zero_grad(set_to_none=True)
        loss = c.nll(x)
    with record_function(PHASES[1]):
        loss.backward()
    with record_function(PHASES[2]):
        opt.step()


def profile_fn(fn: Callable[[], object], steps: int):
    """Warm ``fn`` up, then run it ``steps`` times under torch.profiler (CPU); returns (profile, wall seconds)."""
    for _ in range(max(3, steps // 5)):
        fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        wall = time.perf_counter() - t0
    return prof, wall


def summarise(name: str, what: str, prof, wall: float, steps: int) -> None:
    """One line: profiled ms/step, aten op calls per step, and (training) the time of each phase."""
    events = {e.key: e for e in prof.key_averages()}
    ops = sum(e.count for k, e in events.items() if k.startswith("aten::"))
    line = f"  {name:18s} {what:6s} {wall / steps * 1e3:7.3f} ms/step, {ops / steps:5.0f} aten op calls/step"
    phases = [(p, events[p].cpu_time_total / 1e3 / steps) for p in PHASES if p in events]
    if phases:
        line += "; " + ", ".join(f"{p} {ms:.3f} ms ({ms / (wall / steps * 1e3):.0%})" for p, ms in phases)
    print(line)


def run_profile(args, x: torch.Tensor) -> None:
    """torch.profiler on every contender (summary lines), operator tables for deepgen, then cProfile."""
    steps = args.profile_steps
    contenders: dict[str, Contender] = {}
    for pair in args.pairs:
        for c in make_pair(pair, args):
            contenders.setdefault(c.name, c)
    print(
        f"torch.profiler, {steps} steps each, batch {args.batch}, {torch.get_num_threads()} thread(s); "
        "times are inflated by the profiler (a few us per op): compare op counts and shares, not ms"
    )
    tables = []
    for c in contenders.values():
        opt = torch.optim.Adam(c.module.parameters(), lr=args.lr)
        for what, fn in (
            ("train", lambda c=c, opt=opt: profiled_train_step(c, opt, x)),
            ("sample", lambda c=c: sample_steps(c, args.samples, 1)),
        ):
            prof, wall = profile_fn(fn, steps)
            summarise(c.name, what, prof, wall, steps)
            if c.name.startswith("deepgen") or args.profile_peers:
                table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile_rows)
                tables.append((f"{c.name}, {what} ({steps} steps)", table))
    for title, table in tables:
        print(f"\n-- {title}: top operators by self CPU time")
        print(table)
    # the Python side: which deepgen functions the interpreter spends its own time in
    for c in contenders.values():
        if not c.name.startswith("deepgen"):
            continue
        opt = torch.optim.Adam(c.module.parameters(), lr=args.lr)
        train_steps(c, opt, x, 3)
        prof = cProfile.Profile()
        prof.runcall(train_steps, c, opt, x, steps)
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.profile_rows)
        print(f"\n-- {c.name}, train ({steps} steps): cProfile, top functions by own time")
        print(out.getvalue().split("\n\n", 1)[-1].rstrip())


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30, help="timed blocks per side and task")
    ap.add_argument("--warmup", type=int, default=5, help="untimed blocks per side first")
    ap.add_argument("--block", type=int, default=20, help="steps per timed block")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--samples", type=int, default=None, help="samples per sampling step (default: --batch)")
    ap.add_argument("--layers", type=int, default=8, help="RealNVP coupling layers")
    ap.add_argument("--hidden", default="64,64", help="conditioner hidden sizes")
    ap.add_argument("--bins", type=int, default=8, help="NSF spline bins")
    ap.add_argument("--nsf-transforms", type=int, default=3, help="NSF layers (zuko.flows.NSF's default: 3)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--optimizer", choices=("deepgen", "same"), default="deepgen", help="Adam of each side (see above)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs", default=",".join(PAIRS), help=f"comma-separated subset of {', '.join(PAIRS)}")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/flow_speed.json)")
    ap.add_argument("--profile", action="store_true", help="profile the models instead of racing them")
    ap.add_argument("--profile-steps", type=int, default=100)
    ap.add_argument("--profile-rows", type=int, default=15)
    ap.add_argument("--profile-peers", action="store_true", help="print the peers' operator tables too")
    args = ap.parse_args()
    args.hidden = tuple(int(h) for h in args.hidden.split(","))
    args.samples = args.samples or args.batch
    args.pairs = [p.strip() for p in args.pairs.split(",") if p.strip()]
    bad = [p for p in args.pairs if p not in PAIRS]
    if bad or not args.pairs:
        ap.error(f"unknown or no pairs {bad}; valid: {', '.join(PAIRS)}")
    if args.reps < 1 or args.block < 1:
        ap.error("--reps and --block must be positive")

    torch.set_num_threads(args.threads)
    x = toy_data(args.batch, args.seed)
    if args.profile:
        run_profile(args, x)
        return

    settings = {
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "samples": args.samples,
        "reps": args.reps,
        "warmup": args.warmup,
        "block": args.block,
        "layers": args.layers,
        "hidden": list(args.hidden),
        "bins": args.bins,
        "nsf_transforms": args.nsf_transforms,
        "optimizer": f"Adam(lr={args.lr}); deepgen's from deepgen.models.base.build_optimizer (fused=True)"
        if args.optimizer == "deepgen"
        else f"Adam(lr={args.lr}), torch defaults for both",
        "seed": args.seed,
        "data": "8 Gaussians on a circle of radius 2, std 0.25",
        "versions": {"torch": str(torch.__version__), "normflows": nf.__version__, "zuko": zuko.__version__},
    }
    print(
        f"torch {torch.__version__}, normflows {nf.__version__}, zuko {zuko.__version__}; "
        f"{settings['threads']} thread(s), batch {args.batch}, {args.reps} reps x {args.block} steps"
    )
    results = []
    for pair in args.pairs:
        results.append(run_pair(pair, args, x))
        path = write_result("flow_speed", settings, results, args.out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
