"""deepgen train: train one model on one dataset (also under torchrun)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from deepgen.cli.common import EXAMPLES_FMT, add_data_args, data_spec, fmt, model_options, read_config_file

EPILOG = """Examples:
  deepgen train vae --data digits --steps 2000
  deepgen train gan --data moons --steps 5000 --out runs/gan-moons
  deepgen train vae --data mnist --data-dir ~/data -o latent_dim=32 -o decoder=logistic
  deepgen train vae --data digits --out runs/v --resume        # continue a run exactly
  deepgen train vae --data digits --config my.toml             # [model], [train], [data] tables
  torchrun --nproc_per_node=2 -m deepgen train vae --data digits --out runs/ddp
"""

# CLI flag -> TrainConfig field
TRAIN_FLAGS = {
    "steps": "steps",
    "batch_size": "batch_size",
    "lr": "lr",
    "seed": "seed",
    "weight_decay": "weight_decay",
    "lr_schedule": "lr_schedule",
    "warmup_steps": "warmup_steps",
    "grad_clip": "grad_clip",
    "ema_decay": "ema_decay",
    "log_every": "log_every",
    "eval_every": "eval_every",
    "ckpt_every": "ckpt_every",
    "threads": "threads",
    "device": "device",
}


def add_train_args(p) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, help="optimisation steps (default 2000)")
    g.add_argument("--batch-size", type=int, help="batch size per process (default 128)")
    g.add_argument("--lr", type=float, help="learning rate (default: the model's, e.g. 1e-3)")
    g.add_argument("--seed", type=int, help="random seed (default 0)")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--lr-schedule", choices=["constant", "cosine"])
    g.add_argument("--warmup-steps", type=int)
    g.add_argument("--grad-clip", type=float, help="clip the gradient norm to this value")
    g.add_argument("--ema-decay", type=float, help="keep an EMA of the weights (e.g. 0.999); used for sampling")
    g.add_argument("--log-every", type=int)
    g.add_argument("--eval-every", type=int)
    g.add_argument("--ckpt-every", type=int)
    g.add_argument("--threads", type=int, help="torch threads (tiny models are often faster with 1)")
    g.add_argument("--device", help="cpu, cuda, cuda:1 or auto (default)")
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
    from deepgen.config import from_dict, to_dict
    from deepgen.data import DataSpec, load_dataset
    from deepgen.errors import DeepgenError
    from deepgen.registry import get_model_class
    from deepgen.train import TrainConfig, Trainer, build_model
    from deepgen.train.checkpoint import load_checkpoint

    cls = get_model_class(args.model)
    file_cfg = read_config_file(args.config)
    out = Path(args.out) if args.out else default_run_dir(args.model, args.data)
    if args.resume and not args.out:
        raise DeepgenError("--resume needs --out RUN_DIR (the run to continue)")
    ckpt = load_checkpoint(out / "checkpoint.pt") if args.resume and (out / "checkpoint.pt").exists() else None
    if ckpt is not None:
        if ckpt["model_name"] != args.model:
            raise DeepgenError(f"{out}: this run trained {ckpt['model_name']!r}, not {args.model!r}")
        options = {**ckpt["model_config"], **model_options(file_cfg, args.option)}
        spec = data_spec(args, ckpt.get("data_spec"))
        tdict = {**ckpt["train_config"], **file_cfg.get("train", {}), **train_overrides(args)}
    else:
        options = model_options(file_cfg, args.option)
        spec = data_spec(args, file_cfg.get("data"))
        tdict = {
            **to_dict(TrainConfig()),
            **cls.train_defaults,
            **file_cfg.get("train", {}),
            **train_overrides(args),
        }
    tcfg = from_dict(TrainConfig, tdict)
    data = load_dataset(spec)
    model = build_model(args.model, data.info, options, seed=tcfg.seed)
    main = os.environ.get("RANK", "0") == "0"
    if main and not args.quiet:
        print(f"training {args.model} ({cls.family}, {model.num_parameters:,} parameters) on {data.info.describe()}")
        print(f"  {len(data.train):,} train / {len(data.val):,} val examples; run folder {out}")
    trainer = Trainer(
        model,
        data,
        tcfg,
        out,
        data_spec=DataSpec(**to_dict(spec)),
        resume=args.resume,
        overwrite=args.overwrite,
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
    print(
        f"  {s['steps']} steps, {s['train_seconds']:.1f} s"
        + (f", {rate:,.0f} examples/s (last window)" if rate else "")
    )
    if "val_nll" in s:
        from deepgen.evaluate import NLL_LABEL

        label = NLL_LABEL.get(model.density_kind.value, model.density_kind.value)
        unit = f", {s['val_bpd']:.4f} bits/dim" if "val_bpd" in s else ""
        print(f"  validation NLL {s['val_nll']:.4f} nats{unit} ({label})")
    elif "loss" in s:
        print(f"  final training loss {fmt(s['loss'])}")
    files = sorted(p.name for p in Path(run).iterdir() if p.is_file() and not p.name.startswith("."))
    print(f"  files: {', '.join(files)}")
    if not s.get("interrupted"):
        print(f"next: deepgen sample {run} -n 64 --out samples.png   |   deepgen eval {run}")
