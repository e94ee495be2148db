"""Shared by the benchmark scripts: result files with everything needed to reproduce a number."""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    from deepgen.train.accel import cpu_has_native_bf16

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }


def write_result(name: str, settings: dict, results, out: str | Path | None = None) -> Path:
    """Write ``benchmarks/results/NAME.json`` (or ``out``) with command, commit, date and machine."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "command": "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]),
        "commit": commit(),
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": settings,
        "results": results,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def timed(fn: Callable[[], object]) -> float:
    """Seconds of one call of ``fn``, with the garbage collector off during it."""
    gc.disable()
    try:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    finally:
        gc.enable()


def race(
    a: Callable[[], object], b: Callable[[], object], reps: int, warmup: int, per_block: int, peer: str = "peer"
) -> dict:
    """Alternate blocks A (deepgen) B (``peer``) A B ...: medians in ms per step (a block holds
    ``per_block`` steps), their ratio, and the median and quartiles of the per-pair ratios (both sides
    of a pair saw the same machine load)."""
    for _ in range(warmup):
        a()
        b()
    gc.collect()
    ta, tb = [], []
    for _ in range(reps):
        ta.append(timed(a) / per_block * 1e3)
        tb.append(timed(b) / per_block * 1e3)
    ratios = [x / y for x, y in zip(ta, tb)]
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return {
        "deepgen_ms": statistics.median(ta),
        f"{peer}_ms": statistics.median(tb),
        "ratio": statistics.median(ta) / statistics.median(tb),
        "pair_ratio_median": statistics.median(ratios),
        "pair_ratio_q1_q3": [quartiles[0], quartiles[2]],
        "deepgen_ms_all": ta,
        f"{peer}_ms_all": tb,
    }


def trained_with_defaults(name: str, ds, steps: int, cache: str | None = None, seed: int = 0):
    """``(model, train_s)``: model ``name`` trained on dataset ``ds`` with its training defaults for
    ``steps`` steps (seed ``seed``, one thread, no evaluation), in eval mode. With ``cache`` (a
    directory) the weights are kept as ``NAME_DATA_{steps}steps_seed{seed}.pt`` and reused by any
    benchmark that asks for the same model, data, steps and seed."""
    import tempfile

    from deepgen.registry import get_model_class
    from deepgen.train import TrainConfig, Trainer
    from deepgen.train.run import build_model

    model = build_model(name, ds.info, seed=seed)
    path = os.path.join(cache, f"{name}_{ds.info.name}_{steps}steps_seed{seed}.pt") if cache else None
    if path and os.path.exists(path):
        saved = torch.load(path, weights_only=True)
        model.load_state_dict(saved["state"])
        print(f"{name}: weights from {path} (trained in {saved['train_s']:.0f} s)", flush=True)
        return model.eval(), saved["train_s"]
    train = {**get_model_class(name).train_defaults_for(ds.info, {}), "steps": steps}
    train = {k: v for k, v in train.items() if k in TrainConfig.__dataclass_fields__}
    cfg = TrainConfig(**{**train, "seed": seed, "progress": False, "eval_every": 0, "ckpt_every": 0, "threads": 1})
    t0 = time.perf_counter()
    Trainer(model, ds, cfg, tempfile.mkdtemp(), plots=False, quiet=True).fit()
    train_s = time.perf_counter() - t0
    if path:
        os.makedirs(cache, exist_ok=True)
        torch.save({"state": model.state_dict(), "train_s": train_s}, path)
    return model.eval(), train_s
