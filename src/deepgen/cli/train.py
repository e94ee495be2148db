"""deepgen train: train one model on one dataset (also under torchrun)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from deepgen.cli.common import EXAMPLES_FMT, add_data_args, data_spec, duration, fmt, model_options, read_config_file

EPILOG = """Examples:
  deepgen train vae --data digits --steps 2000
  deepgen train gan --data moons --steps 5000 --out runs/gan-moons
  deepgen train vae --data mnist --data-dir ~/data -o latent_dim=32 -o decoder=logistic
  deepgen train vae --data digits --out runs/v --resume        # continue a run exactly
  deepgen train vae --data digits --config my.toml             # [model], [train], [data] tables
  deepgen train vae --data mnist --device cuda --precision bf16 --grad-accum 4
  deepgen train vae --data digits --sample-every 500           # samples/step_000500.png, ...
  deepgen train made --data digits --eval-every 100 --patience 5   # early stopping; best.pt
  deepgen train realnvp --data mnist --steps 100000 --lr-schedule cosine --time-limit 2h   # a time budget
  deepgen train vae --data digits --init-from runs/v:encoder   # start from a trained encoder
  torchrun --nproc_per_node=2 -m deepgen train vae --data digits --out runs/ddp
"""

# CLI flag -> TrainConfig field
TRAIN_FLAGS = {
    "steps": "steps",
    "batch_size": "batch_size",
    "lr": "lr",
    "seed": "seed",
    "weight_decay": "weight_decay",
    "optimizer": "optimizer",
    "lr_schedule": "lr_schedule",
    "warmup_steps": "warmup_steps",
    "grad_clip": "grad_clip",
    "ema_decay": "ema_decay",
    "log_every": "log_every",
    "eval_every": "eval_every",
    "ckpt_every": "ckpt_every",
    "threads": "threads",
    "device": "device",
    "grad_accum": "grad_accum",
    "precision": "precision",
    "compile": "compile",
    "steps_per_call": "steps_per_call",
    "keep_best": "keep_best",
    "patience": "patience",
    "time_limit": "time_limit",
}


def add_train_args(p) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, help="optimisation steps (default 2000)")
    g.add_argument("--batch-size", type=int, help="batch size per process (default 128)")
    g.add_argument("--lr", type=float, help="learning rate (default: the model's, e.g. 1e-3)")
    g.add_argument("--seed", type=int, help="random seed (default 0)")
    g.add_argument("--weight-decay", type=float)
    g.add_argument(
        "--optimizer",
        choices=["adam", "adamw", "adagrad"],
        help="adam (default; coupled L2 weight decay), adamw (decoupled) or adagrad",
    )
    g.add_argument("--lr-schedule", choices=["constant", "cosine"])
    g.add_argument("--warmup-steps", type=int)
    g.add_argument("--grad-clip", type=float, help="clip the gradient norm to this value")
    g.add_argument("--ema-decay", type=float, help="keep an EMA of the weights (e.g. 0.999); used for sampling")
    g.add_argument("--log-every", type=int)
    g.add_argument("--eval-every", type=int)
    g.add_argument("--ckpt-every", type=int)
    g.add_argument("--threads", type=int, help="torch threads (tiny models are often faster with 1)")
    g.add_argument("--device", help="auto (default: a GPU when there is one), cpu, cuda or cuda:N")
    g.add_argument(
        "--grad-accum",
        type=int,
        metavar="N",
        help="accumulate gradients over N batches per step (= one batch of N x batch-size)",
    )
    g.add_argument("--precision", choices=["fp32", "bf16"], help="bf16: forward pass in bfloat16 autocast")
    g.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="torch.compile the model's loss (models without their own train_step)",
    )
    g.add_argument(
        "--steps-per-call",
        type=int,
        metavar="N",
        help="take up to N steps in one call of the model's fused update (models that have one: rbm, "
        "default 100); logging, evaluation and checkpoints stay at their steps",
    )
    g.add_argument(
        "--keep-best",
        action="store_true",
        default=None,
        help="also keep best.pt, the checkpoint of the lowest validation NLL (deepgen eval RUN/best.pt)",
    )
    g.add_argument(
        "--patience",
        type=int,
        metavar="N",
        help="stop when N evaluations in a row have not lowered the validation NLL (keeps best.pt)",
    )
    g.add_argument(
        "--time-limit",
        type=duration,
        metavar="T",
        help="also stop after T of training (e.g. 2h, 45m, 1h30m, or seconds); a cosine schedule then "
        "decays over the steps or T, whichever runs out first",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_parser(sub):
    p = sub.add_parser(
        "train",
        help="train a model",
        formatter_class=EXAMPLES_FMT,
        epilog=EPILOG,
        description="Train MODEL on DATA. Writes a run folder: config.json, checkpoint.pt, "
        "metrics.jsonl, loss.png and samples.png (density map for 2D data).",
    )
    p.add_argument("model", metavar="MODEL", help="model name (see 'deepgen list')")
    add_data_args(p)
    add_train_args(p)
    p.add_argument("--out", help="run folder (default runs/MODEL-DATA-TIMESTAMP)")
    p.add_argument("--config", help="TOML or JSON file with [model], [train] and [data] tables")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument(
        "--init-from",
        metavar="RUN[:SUB]",
        help="fresh run starting from a trained run's weights: RUN (all), RUN:encoder (one submodule), "
        "RUN:=sub (the whole run into submodule sub)",
    )
    p.add_argument("--sample-every", type=int, metavar="N", help="write samples/step_NNNNNN.png every N steps")
    p.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="model option (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the final summary")
    p.set_defaults(func=run)


def train_overrides(args) -> dict:
    out = {field: getattr(args, flag) for flag, field in TRAIN_FLAGS.items() if getattr(args, flag, None) is not None}
    if getattr(args, "no_progress", False) or getattr(args, "quiet", False):
        out["progress"] = False
    return out


def default_run_dir(model: str, data: str) -> Path:
    stem = Path(data).stem if os.sep in data or "." in data else data
    return Path("runs") / f"{model}-{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def run(args) -> int:
    from deepgen.config import from_dict, parse_duration, to_dict
    from deepgen.data import DataSpec, load_dataset, resolve_user_path
    from deepgen.errors import DeepgenError
    from deepgen.registry import get_model_class
    from deepgen.train import TrainConfig, Trainer, build_model
    from deepgen.train.callbacks import BannerCallback, run_plots_callbacks
    from deepgen.train.checkpoint import load_checkpoint

    cls = get_model_class(args.model)
    file_cfg = read_config_file(args.config)
    out = Path(args.out) if args.out else default_run_dir(args.model, args.data)
    if args.resume and not args.out:
        raise DeepgenError("--resume needs --out RUN_DIR (the run to continue)")
    exists = (out / "checkpoint.pt").exists()
    if exists and not args.resume and not args.overwrite:  # before loading data, and before any banner
        raise DeepgenError(
            f"{out} already holds a run; pass --resume to continue it, --overwrite to replace it, "
            "or choose another --out"
        )
    if args.init_from and args.resume and exists:
        raise DeepgenError(
            f"--init-from starts a fresh run, but {out} holds a run to resume (its checkpoint already holds "
            "the weights); drop --init-from, or train into another --out"
        )
    if args.sample_every is not None and args.sample_every < 0:
        raise DeepgenError("--sample-every must be >= 0")
    ckpt = load_checkpoint(out / "checkpoint.pt") if args.resume and exists else None
    if ckpt is not None:
        if ckpt["model_name"] != args.model:
            raise DeepgenError(f"{out}: this run trained {ckpt['model_name']!r}, not {args.model!r}")
        options = {**ckpt["model_config"], **model_options(file_cfg, args.option)}
        spec = data_spec(args, ckpt.get("data_spec"))
        tdict = {**ckpt["train_config"], **file_cfg.get("train", {}), **train_overrides(args)}
    else:
        options = model_options(file_cfg, args.option)
        spec = data_spec(args, file_cfg.get("data"))
        tdict = None
    # the run stores its data spec: a user file's absolute path lets eval/score/sample run from any folder
    spec = resolve_user_path(spec)
    data = load_dataset(spec)
    if tdict is None:
        tdict = {
            **to_dict(TrainConfig()),
            **cls.train_defaults_for(data.info, options),
            **file_cfg.get("train", {}),
            **train_overrides(args),
        }
    if isinstance(tdict.get("time_limit"), str):  # a config file's time_limit = "2h"
        tdict["time_limit"] = parse_duration(tdict["time_limit"])
    tcfg = from_dict(TrainConfig, tdict)
    model = build_model(args.model, data.info, options, seed=tcfg.seed)
    main = os.environ.get("RANK", "0") == "0"
    callbacks = run_plots_callbacks(sample_every=args.sample_every or 0)
    if not args.quiet:  # printed by the trainer once every refusal has passed (rank 0 only)
        banner = [
            f"training {args.model} ({cls.family}, {model.num_parameters:,} parameters) on {data.info.describe()}",
            f"  {len(data.train):,} train / {len(data.val):,} val examples; run folder {out}",
        ]
        if args.init_from:
            banner.append(f"  initial weights from {args.init_from}")
        callbacks.insert(0, BannerCallback(banner))
    trainer = Trainer(
        model,
        data,
        tcfg,
        out,
        data_spec=DataSpec(**to_dict(spec)),
        resume=args.resume,
        overwrite=args.overwrite,
        callbacks=callbacks,
        init_from=args.init_from,
        quiet=args.quiet,
    )
    summary = trainer.fit()
    if main:
        print_summary(summary, model, data.info)
    return 130 if summary["interrupted"] else 0


def print_summary(s: dict, model, info) -> None:
    run = s["run"]
    rate = s.get("examples_per_s")
    print(f"run: {run}")
    start = s.get("start_step", 0)
    print(
        f"  {s['steps']} steps"
        + (f" ({s['steps'] - start} in this session, resumed at step {start})" if start else "")
        + f", {s['train_seconds']:.1f} s of training"
        + (f", {rate:,.0f} examples/s (last window)" if rate else "")
    )
    if s.get("time_limit_reached"):
        print(f"  stopped at the time limit: {s['elapsed']:.1f} s of {s['time_limit']:g} s")
    if "val_nll" in s:
        from deepgen.evaluate import NLL_LABEL

        label = NLL_LABEL.get(model.density_kind.value, model.density_kind.value)
        unit = f", {s['val_bpd']:.4f} bits/dim" if "val_bpd" in s else ""
        print(f"  validation NLL {s['val_nll']:.4f} nats{unit} ({label})")
    elif "loss" in s:
        print(f"  final training loss {fmt(s['loss'])}")
    if s.get("best_step") is not None:
        how = "stopped early; " if s.get("stopped_early") else ""
        print(f"  {how}best validation NLL {s['best_val_nll']:.4f} nats at step {s['best_step']}: {run}/best.pt")
    files = sorted(p.name for p in Path(run).iterdir() if p.is_file() and not p.name.startswith("."))
    print(f"  files: {', '.join(files)}")
    if not s.get("interrupted"):
        first = (
            f"deepgen sample {run} -n 64 --out samples.png"
            if model.samples_from_noise
            else f"deepgen translate {run} --out translated.png"
        )
        best = f"   |   deepgen eval {run}/best.pt" if s.get("best_step") is not None else ""
        print(f"next: {first}   |   deepgen eval {run}{best}")
