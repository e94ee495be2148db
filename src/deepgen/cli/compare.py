"""deepgen compare: the review's comparison table, measured like-for-like on your data."""

from __future__ import annotations

from deepgen.cli.common import EXAMPLES_FMT, add_data_args, add_sample_args, data_spec, duration

EPILOG = """Examples:
  deepgen compare --data digits --models independent,vae,gan --steps 1500 --out runs/cmp
  deepgen compare --data 8gaussians --models gmm,vae,gan --steps 3000 --out runs/toy
  deepgen compare --data mnist --data-dir ~/data --models vae,gan -o vae.latent_dim=32 --out runs/mnist
  deepgen compare --data digits --models vae,gan -s vae.mean=true --out runs/cmp   # per-model sampling options
  deepgen compare --data digits --models vae,gan,made,maf --jobs 2 --out runs/cmp   # 2 models at a time
  deepgen compare --data digits --models vae,maf --steps 100000 --time-limit 5m --out runs/t   # equal time
Writes table.md, table.csv, report.html (sample grids, density maps for 2D data) and results.json.
"""


def add_parser(sub):
    p = sub.add_parser(
        "compare",
        help="train several models on the same data and compare them",
        formatter_class=EXAMPLES_FMT,
        epilog=EPILOG,
        description="Train each model with the same data, steps, batch size and seed; measure "
        "training speed, sampling speed, parameters, density kind, NLL and sample quality.",
    )
    add_data_args(p)
    p.add_argument("--models", required=True, help="comma-separated model names")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace a comparison already in --out")
    p.add_argument("-o", "--option", action="append", metavar="MODEL.KEY=VALUE", help="per-model option")
    p.add_argument("--k", type=int, help="Monte Carlo samples for bound/estimate NLLs (default 100 for VAEs)")
    p.add_argument("--n-samples", type=int, help="samples per model for quality metrics")
    p.add_argument("--features", help="feature network (default by image shape; inception:PATH for FID proper)")
    p.add_argument("--threads", type=int, help="torch threads (per job with --jobs; default: all cores, 1 per job)")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="train N models at a time in separate processes (tiny models on several cores: their speeds "
        "are then one-thread speeds beside other jobs)",
    )
    p.add_argument(
        "--time-limit",
        type=duration,
        metavar="T",
        help="also stop each model's training after T (e.g. 10m, 1h, or seconds): compare at equal time; "
        "the report lists the steps each reached",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_sample_args(p, per_model=True)
    p.set_defaults(func=run)


def per_model_options(items: list[str] | None, models: list[str]) -> dict[str, dict]:
    """``["vae.latent_dim=8"]`` -> ``{"vae": {"latent_dim": "8"}}`` (each model must be in ``models``)."""
    from deepgen.errors import ConfigError

    out: dict[str, dict] = {}
    for item in items or []:
        key, _, value = item.partition("=")
        model, _, field = key.partition(".")
        if not field or not _:
            raise ConfigError(f"option {item!r} is not MODEL.KEY=VALUE")
        if model not in models:
            raise ConfigError(f"option {item!r} names {model!r}, which is not in --models")
        out.setdefault(model, {})[field.replace("-", "_")] = value
    return out


def run(args) -> int:
    from pathlib import Path

    from deepgen.compare import run_compare
    from deepgen.data import resolve_user_path
    from deepgen.errors import ConfigError, DeepgenError

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise ConfigError("--models is empty")
    if len(set(models)) != len(models):
        raise ConfigError(f"--models lists a model twice: {args.models}")
    out = Path(args.out)
    if (out / "results.json").exists() and not args.overwrite:  # as 'deepgen train' refuses a run folder
        raise DeepgenError(f"{out} already holds a comparison; pass --overwrite to replace it, or choose another --out")
    # each model's run stores the spec: an absolute path keeps 'deepgen eval DIR/runs/MODEL' working anywhere
    spec = resolve_user_path(data_spec(args))
    res = run_compare(
        spec,
        models,
        args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        options=per_model_options(args.option, models),
        sample_options=per_model_options(args.sample_option, models),
        k=args.k,
        n_samples=args.n_samples,
        features=args.features,
        threads=args.threads,
        jobs=args.jobs,
        time_limit=args.time_limit,
        progress=not args.quiet,
    )
    print()
    print(open(res.files["markdown"]).read())
    print(f"report: {res.files['html']}  (also {res.files['markdown']}, {res.files['csv']}, {res.files['json']})")
    return 0
