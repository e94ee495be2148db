"""How much does the training engine cost on top of the model's own step?

The model: a 2D RealNVP-style flow (8 affine couplings, 2x64 MLPs, batch 256) on two moons -- a
training step of a few milliseconds, the case where engine overhead would show. Two loops are
timed, alternating, on the same batches:

* bare:   x = data[idx]; loss = model.loss(x); zero_grad; backward; optimizer.step()
* engine: deepgen's Trainer.fit (progress bar, metrics.jsonl every 50 steps, loss check, EMA, ...)
* engine_lagged: the engine in its GPU bookkeeping mode, forced on the CPU (metrics summed as
  tensors, the loss check lagged by one step): shows what that mode would cost where reading a
  value is free, which is why the CPU keeps reading floats every step

overhead = median(engine step) / median(bare step) - 1. Then a sampling profiler (py-spy, which does
not slow down the Python it watches the way cProfile does) records an engine run: the share of
samples inside ``Trainer._loop`` but outside ``model.train_step`` is the engine's own cost. A cProfile
table shows which engine functions that time goes to. Periodic evaluation and checkpoints are off:
they are not per-step costs.

    python benchmarks/engine_overhead.py                 # ~1 minute on 2 cores; py-spy from `make bench`
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))
from _common import write_result  # noqa: E402
from deepgen.data import DataSpec, load_dataset  # noqa: E402
from deepgen.distributions import standard_normal_log_prob  # noqa: E402
from deepgen.models.density import ContinuousDensityModel  # noqa: E402
from deepgen.nn import MLP  # noqa: E402
from deepgen.registry import temporary  # noqa: E402
from deepgen.train import TrainConfig, Trainer  # noqa: E402


class TinyRealNVP(ContinuousDensityModel):
    """Affine coupling flow for 2D data (Dinh et al., 2017, arXiv:1605.08803), a benchmark double."""

    family = "flow"

    def __init__(self, info, config=None, n_layers=8, hidden=64):
        super().__init__(info, config)
        self.nets = nn.ModuleList(MLP(1, 2, (hidden, hidden), zero_last=True) for _ in range(n_layers))

    def log_density(self, y):
        log_det = torch.zeros(len(y))
        for i, net in enumerate(self.nets):
            a, b = (y[:, :1], y[:, 1:]) if i % 2 == 0 else (y[:, 1:], y[:, :1])
            s, t = net(a).chunk(2, 1)
            s = torch.tanh(s)
            b = b * torch.exp(s) + t
            log_det = log_det + s.squeeze(1)
            y = torch.cat([a, b], 1) if i % 2 == 0 else torch.cat([b, a], 1)
        return standard_normal_log_prob(y) + log_det

    def sample(self, n, *, generator=None):
        raise NotImplementedError


def bare_loop(model, x, steps, batch, seed):
    from deepgen.train.sampler import EpochSampler

    sampler = EpochSampler.for_run(len(x), batch, seed)
    opt = model.configure_optimizers(TrainConfig(lr=1e-3))["main"]  # the optimiser the engine uses
    t0 = time.perf_counter()
    for s in range(steps):
        xb = x[sampler.batch(s)]
        loss = model.loss(xb)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def engine_loop(model, ds, steps, batch, seed, ema, out, host_sync=None):
    cfg = TrainConfig(
        steps=steps,
        batch_size=batch,
        seed=seed,
        lr=1e-3,
        eval_every=0,
        ckpt_every=0,
        log_every=50,
        ema_decay=ema,
        progress=True,
    )
    trainer = Trainer(model, ds, cfg, out, plots=False)
    trainer._host_sync = host_sync
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        summary = trainer.fit()
    return summary["train_seconds"] / steps


def pyspy_share(steps: int, batch: int, threads: int) -> dict | None:
    """Run one engine+EMA training under py-spy; the share of loop samples outside model.train_step."""
    import shutil
    import subprocess

    exe = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(exe):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "stacks.txt")
        cmd = [
            exe,
            "record",
            "--format",
            "raw",
            "--rate",
            "250",
            "--output",
            raw,
            "--",
            sys.executable,
            __file__,
            "--profile-target",
            "--steps",
            str(steps),
            "--batch-size",
            str(batch),
            "--threads",
            str(threads),
        ]
        subprocess.run(cmd, check=True, capture_output=True)
        loop = inside = 0
        for line in open(raw):
            stack, _, count = line.rstrip().rpartition(" ")
            if "Trainer._loop (" not in stack:
                continue
            loop += int(count)
            if "train_step (" in stack:
                inside += int(count)
    return {"loop_samples": loop, "train_step_samples": inside, "share_outside_train_step": 1 - inside / loop}


def profile_target(args):
    ds = load_dataset(DataSpec("moons", n_train=20_000))
    with temporary("bench-realnvp", TinyRealNVP), tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        engine_loop(TinyRealNVP(ds.info), ds, args.steps, args.batch_size, 0, 0.999, f"{tmp}/run")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out")
    ap.add_argument("--profile-target", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.profile_target:
        return profile_target(args)
    ds = load_dataset(DataSpec("moons", n_train=20_000))
    times = {"bare": [], "engine": [], "engine_ema": [], "engine_lagged": []}
    with temporary("bench-realnvp", TinyRealNVP), tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for kind in times:  # alternate the three loops so drift hits all equally
                torch.manual_seed(r)
                model = TinyRealNVP(ds.info)
                if kind == "bare":
                    times[kind].append(bare_loop(model, ds.train.x, args.steps, args.batch_size, r))
                else:
                    ema = 0.999 if kind == "engine_ema" else 0.0
                    sync = False if kind == "engine_lagged" else None
                    out = f"{tmp}/{kind}{r}"
                    times[kind].append(engine_loop(model, ds, args.steps, args.batch_size, r, ema, out, sync))
        med = {k: statistics.median(v) for k, v in times.items()}
        prof = cProfile.Profile()
        torch.manual_seed(0)
        model = TinyRealNVP(ds.info)
        prof.enable()
        engine_loop(model, ds, args.steps, args.batch_size, 0, 0.999, f"{tmp}/prof")
        prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt
    step_time = next(v[3] for k, v in stats.stats.items() if k[2] == "train_step")
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(12)
    spy = pyspy_share(3 * args.steps, args.batch_size, args.threads)
    results = {
        "py_spy": spy,
        "median_step_ms": {k: 1e3 * v for k, v in med.items()},
        "all_step_ms": {k: [1e3 * t for t in v] for k, v in times.items()},
        "overhead_vs_bare": {k: med[k] / med["bare"] - 1 for k in ("engine", "engine_ema", "engine_lagged")},
        "spread_step_ms": {k: [1e3 * min(v), 1e3 * max(v)] for k, v in times.items()},
        "cprofile_share_outside_train_step": 1 - step_time / total,
    }
    print(
        f"median ms/step: bare {results['median_step_ms']['bare']:.3f}, engine "
        f"{results['median_step_ms']['engine']:.3f}, engine+EMA {results['median_step_ms']['engine_ema']:.3f}"
    )
    ovh = results["overhead_vs_bare"]
    print(
        f"overhead vs bare loop: engine {100 * ovh['engine']:.1f}%, engine+EMA {100 * ovh['engine_ema']:.1f}%, "
        f"engine with GPU bookkeeping on CPU {100 * ovh['engine_lagged']:.1f}%"
    )
    spread = results["spread_step_ms"].items()
    print("spread (min..max ms/step): " + ", ".join(f"{k} {a:.3f}..{b:.3f}" for k, (a, b) in spread))
    if spy:
        print(
            f"py-spy (engine+EMA): {100 * spy['share_outside_train_step']:.1f}% of the training loop's samples "
            f"outside model.train_step ({spy['loop_samples']} samples)"
        )
    print(
        f"cProfile (engine+EMA): {100 * results['cprofile_share_outside_train_step']:.1f}% of fit() outside "
        "model.train_step (cProfile inflates the cost of small Python calls)"
    )
    print(buf.getvalue().split("\n\n")[-2][:2500])
    path = write_result("engine_overhead", vars(args), results, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
