"""Train and measure each model of a comparison."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from deepgen import __version__
from deepgen.config import from_dict, to_dict
from deepgen.data import DataSpec, load_dataset
from deepgen.errors import DataError
from deepgen.evaluate import SampleQuality, entropy_floor, evaluate
from deepgen.metrics.cost import load_average, peak_memory_mb, reset_peak_memory, training_throughput_spread
from deepgen.plots import plot_bounds, plot_density_only, sample_view, save_samples
from deepgen.registry import get_model_class
from deepgen.train import TrainConfig, Trainer, build_model
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
    progress: bool = True,
    log=print,
) -> CompareResult:
    """Train each of ``models`` on ``spec`` with the same budget; measure and report them.

    ``options``: per-model config overrides, e.g. ``{"vae": {"latent_dim": 8}}``; ``sample_options``:
    per-model sampling options, e.g. ``{"ddpm": {"steps": 50}}``, recorded in each row. Every model
    uses its own default learning rate (``train_defaults``); steps, batch size and seed are shared.
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
    if threads:
        torch.set_num_threads(threads)
    log(
        f"comparing {', '.join(models)} on {ds.info.describe()} ({len(ds.train):,} train examples), "
        f"{steps} steps x batch {batch_size}, seed {seed}"
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
    rows = []
    for name in models:
        opts = (options or {}).get(name, {})
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
        }
        tcfg = from_dict(TrainConfig, tdict)
        device = pick_device(tcfg.device)
        reset_peak_memory(device)
        train_s, previous = 0.0, None
        for i, (stage_opts, init_sub) in enumerate(stages):
            last = i == len(stages) - 1
            if i:
                model = build_model(name, ds.info, {**opts, **stage_opts}, seed=seed)
                log(f"  {name}: stage {i + 1} of {len(stages)} ({_describe(stage_opts)}), from {previous}:{init_sub}")
            run_dir = out / "runs" / (name if last else f"{name}-stage{i + 1}")
            init = f"{previous}:{init_sub}" if init_sub else None
            trainer = Trainer(
                model, ds, tcfg, run_dir, data_spec=spec, quiet=not progress, overwrite=True, init_from=init
            )
            train_s += trainer.fit()["train_seconds"]  # the loop only: not plots, evaluation or checkpoints
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
            sample_options=to_dict(sample_opts[name]),
            equal_n=True,
        )
        peak = peak_memory_mb(device)  # training and evaluation
        opts = to_dict(sample_opts[name])
        if result["sampling"]:  # the run's own samples.png used the default options: draw the row's
            save_samples(model, run_dir / "samples.png", seed=seed, data=ds.test.x if points2d else None, options=opts)
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
            "label": f"training wall time for {steps} steps (s)"
            if len(stages) == 1
            else f"training wall time for {len(stages)} stages of {steps} steps each (s)",
        }
        if len(stages) > 1:
            result["stages"] = [_describe(o) for o, _ in stages]
        what = "GPU memory allocated" if device.type == "cuda" else "whole process RSS"
        result["metrics"]["peak_memory"] = {"value": peak, "label": f"peak memory (MiB, {what})"}
        result["run"] = str(run_dir)
        result["options"] = to_dict(model.config)
        result["samples_png"] = str(run_dir / "samples.png")
        rows.append(result)
        m = result["metrics"]
        log(f"  {name}: {train_s:.1f} s, {_short(m)}")
    res = CompareResult(rows, reference, out, skipped=skipped)
    meta = {
        "command": "deepgen compare",
        "deepgen_version": __version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
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
