"""Train and measure each model of a comparison."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from deepgen import __version__
from deepgen.config import from_dict, to_dict
from deepgen.data import DataSpec, load_dataset
from deepgen.errors import ConfigError, DataError
from deepgen.evaluate import SampleQuality, entropy_floor, evaluate
from deepgen.metrics.cost import load_average, peak_memory_mb, reset_peak_memory, training_throughput_spread
from deepgen.plots import plot_bounds, plot_density_only, sample_view
from deepgen.registry import get_model_class
from deepgen.train import TrainConfig, Trainer, build_model
from deepgen.train.callbacks import PlotCallback
from deepgen.train.distributed import pick_device


@dataclass
class CompareResult:
    """Rows (one per model plus the data reference) and where the report files are."""

    rows: list[dict]
    reference: dict
    out: Path
    files: dict[str, str] = field(default_factory=dict)
    #: Models that do not apply to the data (name -> the one-line reason), left out of the table.
    skipped: dict[str, str] = field(default_factory=dict)
    #: Models trained at a time (``jobs``), and torch threads in each job's process.
    jobs: int = 1
    threads_per_job: int | None = None
    #: Seconds of training each model was allowed (None: the step budget alone).
    time_limit: float | None = None


def run_compare(
    spec: DataSpec,
    models: list[str],
    out: str | Path,
    *,
    steps: int = 2000,
    batch_size: int = 128,
    seed: int = 0,
    options: dict[str, dict] | None = None,
    sample_options: dict[str, dict] | None = None,
    k: int | None = None,
    n_samples: int | None = None,
    features: str | None = None,
    threads: int | None = None,
    jobs: int = 1,
    time_limit: float | None = None,
    progress: bool = True,
    log=print,
) -> CompareResult:
    """Train each of ``models`` on ``spec`` with the same budget; measure and report them.

    ``options``: per-model config overrides, e.g. ``{"vae": {"latent_dim": 8}}``; ``sample_options``:
    per-model sampling options, e.g. ``{"ddpm": {"steps": 50}}``, recorded in each row. Every model
    uses its own default learning rate (``train_defaults``); steps, batch size and seed are shared.

    ``jobs`` N > 1 trains and measures N models at a time, each in its own process with
    ``threads`` torch threads (default 1), in the order of ``models``; the rows are the same
    measurements (in ``models``' order, as with one job), but each model's speeds are then those of
    one thread beside other jobs, and its peak memory is its own process's. From a script, call it
    under ``if __name__ == "__main__":`` (the workers are spawned and import the main module).

    ``time_limit`` T (seconds) also ends each model's training after T seconds of its training
    loop (split evenly between the stages of a multi-stage model): the models then compare at
    equal wall-clock time rather than equal steps, and each row records the steps it reached.
    Validation during training stays at every quarter of ``steps``, so a run the clock stops early
    is validated fewer times (always at its last step).
    A cosine schedule decays over the steps or the time, whichever runs out first
    (:class:`~deepgen.train.TrainConfig`).
    """
    from deepgen.compare.report import write_reports

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sample_opts = {}
    for name in models:  # unknown names and options fail before any training
        sample_opts[name] = get_model_class(name).sample_options(**(sample_options or {}).get(name, {}))
    ds = load_dataset(spec)
    if ds.info.kind in ("signal", "scene"):
        raise DataError(
            f"{spec.name} is {ds.info.kind} data: one function fitted to its rows, not a distribution to compare "
            "samples of; use 'deepgen train' and 'deepgen eval' (PSNR, SSIM)"
        )
    skipped = {}
    for name in models:  # a model that does not apply (labels, image networks, ...) is left out, not fatal
        opts = (options or {}).get(name, {})
        try:
            build_model(name, ds.info, {**opts, **_stages(get_model_class(name), opts)[0][0]}, seed=seed)
        except DataError as e:
            skipped[name] = str(e)
            log(f"  leaving out {name}: {e}")
    models = [m for m in models if m not in skipped]
    if not models:
        raise DataError(f"none of the models applies to {spec.name}: " + "; ".join(skipped.values()))
    if jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs}")
    if time_limit is not None and not (time_limit > 0 and math.isfinite(time_limit)):
        raise ConfigError(f"time_limit must be > 0 seconds, got {time_limit}")
    jobs = min(jobs, len(models))
    if threads:
        torch.set_num_threads(threads)
    log(
        f"comparing {', '.join(models)} on {ds.info.describe()} ({len(ds.train):,} train examples), "
        f"{steps} steps x batch {batch_size}, seed {seed}"
        + (f", at most {time_limit:g} s of training each" if time_limit else "")
    )
    quality = SampleQuality.for_dataset(ds, features)
    if n_samples:  # the reference row uses the same n as the models, within what the data can give it
        quality.n = min(n_samples, len(quality.held_out), quality.max_n)
    else:  # slow samplers declare a budget (eval_samples); every row shares the smallest one
        budgets = {name: get_model_class(name).eval_samples for name in models}
        budgets = {name: b for name, b in budgets.items() if b is not None and b < quality.n}
        if budgets:
            slowest = min(budgets, key=budgets.get)
            log(
                f"sampling budget: {slowest} draws at most {budgets[slowest]:,} samples (its sampler is sequential), "
                f"so every row, the real-data row included, uses n = {budgets[slowest]:,} instead of "
                f"{quality.n:,}; --n-samples overrides"
            )
            quality.n = budgets[slowest]
    n_samples = quality.n
    points2d = sample_view(ds.info) == "points2d"
    bounds = plot_bounds(ds.test.x) if points2d else None
    reference = {
        "model": "real data (held out)",
        "family": "reference",
        "n_samples": quality.n,
        "metrics": quality.data_floor(seed),
    }
    floor = entropy_floor(ds.info)
    if floor is not None:
        reference["metrics"]["entropy"] = floor
    reference["samples_png"] = _real_data_picture(ds, out / "real.png", bounds)
    common = dict(
        spec=spec,
        out=out,
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        k=k,
        n_samples=n_samples,
        threads=threads,
        bounds=bounds,
        time_limit=time_limit,
    )
    if jobs > 1:
        rows = _measure_in_parallel(models, jobs, quality, options or {}, sample_opts, common, echo=log is print)
    else:
        rows = []
        for name in models:
            opts = (options or {}).get(name, {})
            rows.append(_measure(name, ds, quality, opts, sample_opts[name], progress=progress, log=log, **common))
    res = CompareResult(
        rows, reference, out, skipped=skipped, jobs=jobs, threads_per_job=threads or 1, time_limit=time_limit
    )
    meta = {
        "command": "deepgen compare",
        "deepgen_version": __version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads() if jobs == 1 else (threads or 1),
        "jobs": jobs,
        "time_limit": time_limit,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "data": to_dict(spec),
        "data_info": ds.info.to_dict(),
        "models": models,
        "skipped": skipped,
        "sample_options": {m: to_dict(o) for m, o in sample_opts.items()},
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "k": k,
        "n_samples": quality.n,
    }
    res.files = write_reports(res, ds, meta)
    (out / "results.json").write_text(
        json.dumps({"meta": meta, "reference": reference, "rows": rows}, indent=2, default=str) + "\n"
    )
    res.files["json"] = str(out / "results.json")
    return res


def _measure(
    name: str,
    ds,
    quality: SampleQuality,
    opts: dict,
    sample_opt,
    *,
    spec: DataSpec,
    out: Path,
    steps: int,
    batch_size: int,
    seed: int,
    k: int | None,
    n_samples: int,
    threads: int | None,
    bounds,
    time_limit: float | None,
    progress: bool,
    log,
) -> dict:
    """Train one model of the comparison (every stage) and measure it: the row of the table."""
    points2d = bounds is not None
    stages = _stages(get_model_class(name), opts)
    model = build_model(name, ds.info, {**opts, **stages[0][0]}, seed=seed)
    tdict = {
        **to_dict(TrainConfig()),
        **model.train_defaults_for(ds.info, {**opts, **stages[0][0]}),
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "progress": progress,
        "eval_every": max(1, steps // 4),  # validation at four points: the loss plots show a trend
        "eval_examples": 1000,
        "ckpt_every": 0,
        "log_every": max(1, min(50, steps // 10)),
        "threads": threads,
        "time_limit": time_limit / len(stages) if time_limit else None,
    }
    tcfg = from_dict(TrainConfig, tdict)
    device = pick_device(tcfg.device)
    reset_peak_memory(device)
    train_s, previous, steps_done = 0.0, None, []
    for i, (stage_opts, init_sub) in enumerate(stages):
        last = i == len(stages) - 1
        if i:
            model = build_model(name, ds.info, {**opts, **stage_opts}, seed=seed)
            log(f"  {name}: stage {i + 1} of {len(stages)} ({_describe(stage_opts)}), from {previous}:{init_sub}")
        run_dir = out / "runs" / (name if last else f"{name}-stage{i + 1}")
        init = f"{previous}:{init_sub}" if init_sub else None
        # the last stage's samples.png is drawn once, with the row's sampling options
        plots = [PlotCallback(options=to_dict(sample_opt), seed=seed)] if last else [PlotCallback()]
        trainer = Trainer(
            model,
            ds,
            tcfg,
            run_dir,
            data_spec=spec,
            quiet=not progress,
            overwrite=True,
            init_from=init,
            callbacks=plots,
        )
        summary = trainer.fit()
        train_s += summary["train_seconds"]  # the loop only: not plots, evaluation or checkpoints
        steps_done.append(summary["steps"])
        previous = run_dir
    torch.manual_seed(seed)
    # after fit() the model holds the weights evaluation uses (the EMA when one is kept)
    result = evaluate(
        model,
        ds,
        k=k,
        n_samples=n_samples,
        seed=seed,
        quality=quality,
        sample_options=to_dict(sample_opt),
        equal_n=True,
    )
    peak = peak_memory_mb(device)  # training and evaluation
    opts = to_dict(sample_opt)
    if points2d:
        (out / "density").mkdir(exist_ok=True)
        path = out / "density" / f"{name}.png"
        result["density_png"] = str(plot_density_only(model, bounds, path, name, options=opts))
    tspeed = training_throughput_spread(run_dir / "metrics.jsonl") or {"median": None}
    result["metrics"]["train_speed"] = {
        "value": tspeed.pop("median"),
        "label": "training throughput (examples/s, median over logged windows after the first)",
        **tspeed,
        "load_average": load_average(),
    }
    result["metrics"]["train_time"] = {
        "value": train_s,
        "label": f"training wall time for {steps_done[0]:,} steps (s)"
        if len(stages) == 1
        else f"training wall time for {len(stages)} stages of {' + '.join(f'{s:,}' for s in steps_done)} steps (s)",
    }
    if len(stages) > 1:
        result["stages"] = [_describe(o) for o, _ in stages]
    what = "GPU memory allocated" if device.type == "cuda" else "whole process RSS"
    result["metrics"]["peak_memory"] = {"value": peak, "label": f"peak memory (MiB, {what})"}
    result["run"] = str(run_dir)
    result["steps"] = steps_done  # per stage: fewer than the budget where a time limit ended training
    result["options"] = to_dict(model.config)
    result["samples_png"] = str(run_dir / "samples.png")
    m = result["metrics"]
    log(f"  {name}: {train_s:.1f} s, {_short(m)}")
    return result


def _measure_in_parallel(models, jobs, quality, options, sample_opts, common, echo: bool) -> list[dict]:
    """``_measure`` for each model in worker processes, ``jobs`` at a time (spawned: no fork of a
    process whose torch threads are running); rows come back in ``models``' order. Spawned workers
    import the caller's main module, so a script that calls this must do so under
    ``if __name__ == "__main__":``, as any script that starts processes."""
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from deepgen.errors import DeepgenError

    common = {**common, "threads": common["threads"] or 1}
    quality = quality.portable()
    if echo:  # workers print their progress lines themselves (a log function does not cross processes)
        print(f"training {jobs} models at a time, {common['threads']} thread(s) each; no progress bars", flush=True)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(models)), mp_context=ctx) as pool:
        futures = [
            pool.submit(_measure_job, name, quality, options.get(name, {}), sample_opts[name], common, echo)
            for name in models
        ]
        # the first failure cancels the models not yet started (those running finish first)
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
        if not failed:
            return [f.result() for f in futures]
        for f in futures:
            f.cancel()
        error = failed[0].exception()
        if isinstance(error, BrokenProcessPool):
            raise DeepgenError(
                "a compare job's process died before returning its row (out of memory? in a script, call "
                "run_compare(jobs=N) under 'if __name__ == \"__main__\":'); rerun with jobs=1 to see the error"
            ) from error
        raise error


def _measure_job(name, quality, opts, sample_opt, common, echo: bool) -> dict:
    """One worker's model: its own threads and dataset (loaded from the spec, as the parent did)."""
    torch.set_num_threads(common["threads"])
    ds = load_dataset(common["spec"])

    def log(msg):
        if echo:
            print(msg, flush=True)

    log(f"  {name}: started")
    return _measure(name, ds, quality, opts, sample_opt, progress=False, log=log, **common)


def _stages(cls, opts: dict) -> tuple[tuple[dict, str | None], ...]:
    """The model's training stages (``training_stages``), or one stage: also when the user's options
    already choose a stage (e.g. ``-o vqvae.stage=autoencoder`` compares that stage alone)."""
    stages = cls.training_stages
    if not stages or any(key in opts for stage_opts, _ in stages for key in stage_opts):
        return (({}, None),)
    return stages


def _describe(opts: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in opts.items())


def _real_data_picture(ds, path: Path, bounds) -> str | None:
    """What the models should reproduce, drawn like their samples: held-out images as a grid, a 2D
    toy's exact density (or the held-out points), nothing for other data."""
    from deepgen.plots import plot_real_2d, sample_view, save_image_grid

    view = sample_view(ds.info)
    if view == "images" and ds.info.kind in ("examples", "domains"):
        return str(save_image_grid(ds.test.x[:64], path))
    if view == "points2d":
        return str(plot_real_2d(ds.info.name, ds.test.x, bounds, path))
    return None


def _short(m: dict) -> str:
    parts = []
    for key, fmt in (
        ("bpd", "{:.3f} bits/dim"),
        ("nll", "NLL {:.3f} nats"),
        ("fid", "FID {:.2f}"),
        ("mmd2", "MMD2 {:.4f}"),
    ):
        v = m.get(key, {}).get("value")
        if v is not None:
            parts.append(fmt.format(v))
    return ", ".join(parts) or "no metrics"
