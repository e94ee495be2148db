"""deepgen restore: solve an inverse problem (inpainting, denoising, super-resolution) with a trained model.

The run's test split (or ``--data``) is degraded by ``--task``; each method the model offers
(:mod:`deepgen.apps.inverse`) restores it, and the restorations are scored against the originals
(PSNR, MSE, and the deepgen classifier's label agreement where the data has one). Writes
``restore.json`` and ``restore.png`` (rows: original, observation, one row per method).
"""

from __future__ import annotations

from pathlib import Path

from deepgen.cli.common import (
    EXAMPLES_FMT,
    add_app_output_args,
    add_data_args,
    sample_options,
    spec_for_run,
    write_json,
)

EPILOG = """Examples:
  deepgen restore runs/vae-digits --task inpaint:center --out runs/restore-center
  deepgen restore runs/pixelcnn-digits --task inpaint:bottom-half --method complete --out runs/r
  deepgen restore runs/ddpm-digits --task denoise:0.2 --strength 0.3 -s sampler=ddim -s steps=20 --out runs/r
  deepgen restore runs/realnvp-digits --task downsample:2 --method latent --out runs/r
  deepgen restore runs/ddpm-digits --task inpaint:bottom-half --method guided -s sampler=ancestral --out runs/r
Tasks: inpaint:MASK (masks of 'deepgen complete --help'), denoise:SIGMA, downsample:F.
Methods: observed (no model: the baseline), complete, latent, edit, guided; 'deepgen restore RUN --task T
--list' shows which a run offers.
"""


def add_parser(sub):
    p = sub.add_parser(
        "restore",
        help="inverse problems with a trained model: inpainting, denoising, super-resolution",
        formatter_class=EXAMPLES_FMT,
        epilog=EPILOG,
        description="Degrade test examples by --task and restore them with every method the model in RUN offers.",
    )
    p.add_argument("run", metavar="RUN")
    add_data_args(p, required=False)
    p.add_argument("--task", required=True, help="the degradation: inpaint:MASK, denoise:SIGMA or downsample:F")
    p.add_argument("--method", help="comma-separated methods (default: every method the model offers)")
    p.add_argument("--list", action="store_true", help="print the methods this run offers for --task and exit")
    p.add_argument("--strength", type=float, default=0.5, help="edit: the first round's noise level (default 0.5)")
    p.add_argument("--rounds", type=int, default=4, help="edit: rounds of edit and projection (default 4)")
    p.add_argument(
        "--resample", type=int, default=1,
        help="guided: take each ancestral step this many times, re-noised in between (RePaint; default 1)",
    )  # fmt: skip
    p.add_argument("--steps", type=int, default=300, help="latent: Adam steps (default 300)")
    p.add_argument("--lr", type=float, default=0.05, help="latent: Adam learning rate (default 0.05)")
    p.add_argument(
        "--latent-sigma", type=float, default=0.05,
        help="latent: the observation's assumed noise std where the task has none (default 0.05)",
    )  # fmt: skip
    p.add_argument(
        "-s", "--sample-option", action="append", metavar="KEY=VALUE",
        help="complete/edit/guided: a sampling option of the model, e.g. -s sampler=ddim -s steps=20",
    )  # fmt: skip
    p.add_argument("-n", type=int, default=500, help="at most this many test examples, seeded (default 500)")
    p.add_argument("--grid", type=int, default=10, help="examples shown in restore.png (default 10)")
    p.add_argument("--batch-size", type=int, default=250, help="examples restored at once (default 250)")
    add_app_output_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import time

    import torch

    from deepgen.apps.inverse import METHODS, Degradation, available_methods, restoration_metrics, restore
    from deepgen.data import check_compatible, load_dataset
    from deepgen.errors import ConfigError
    from deepgen.evaluate.likelihood import subset
    from deepgen.metrics.features import load_feature_network, network_for
    from deepgen.plots import save_image_grid
    from deepgen.train import load_run

    loaded = load_run(args.run, device=args.device)
    model, info = loaded.model, loaded.info
    gen = torch.Generator().manual_seed(args.seed)
    deg = Degradation.parse(args.task, info.shape, info.levels if info.is_discrete else None, gen)
    offered = available_methods(model, deg)
    if args.list:
        for m in offered:
            print(f"{m:10s} {METHODS[m]}")
        return 0
    methods = offered if not args.method else [m.strip() for m in args.method.split(",") if m.strip()]
    for m in methods:
        if m not in offered:
            raise ConfigError(
                f"{model.name} does not offer the method {m!r} for {args.task}; it offers: {', '.join(offered)}"
            )
    ds = load_dataset(spec_for_run(args, loaded.data_spec), info)
    check_compatible(info, ds.info)
    test = subset(ds.test, args.n, args.seed)
    dev = model.device
    x = test.x.to(dev)
    mean = ds.train.x.float().mean(0).to(dev)
    y = deg.observe(x, gen)
    name = network_for(info.shape) if info.is_image else None
    classifier = load_feature_network(name) if name and test.y is not None else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"{model.name} on {ds.info.name}: {len(x)} test examples degraded by {args.task}; methods: {', '.join(methods)}"
    )
    opts = sample_options(args)
    results, rows = {}, {}
    for m in methods:
        t0 = time.perf_counter()
        parts = []
        for i in range(0, len(x), args.batch_size):
            parts.append(
                restore(
                    model, y[i : i + args.batch_size], deg, m, mean=mean, generator=gen, strength=args.strength,
                    rounds=args.rounds, steps=args.steps, lr=args.lr, latent_sigma=args.latent_sigma, options=opts,
                    resample=args.resample,
                ).detach()
            )  # fmt: skip
        r = torch.cat(parts)
        res = restoration_metrics(r.cpu(), x.cpu(), deg, test.y, classifier)
        res["seconds"] = time.perf_counter() - t0
        results[m] = res
        rows[m] = r[: args.grid].cpu()
        agree = f"  label agreement {res['label_agreement']['value']:.3f}" if "label_agreement" in res else ""
        hidden = f"  PSNR unobserved {res['psnr_unobserved']['value']:6.2f}" if "psnr_unobserved" in res else ""
        print(f"{m:10s} PSNR {res['psnr_all']['value']:6.2f} dB{hidden}{agree}  ({res['seconds']:.1f} s)")
    shown = _viewable(deg, y[: args.grid].cpu())
    grid = torch.cat([x[: args.grid].cpu(), shown, *rows.values()])
    save_image_grid(grid, out / "restore.png", nrow=min(args.grid, len(x)))
    settings = {k: v for k, v in vars(args).items() if k != "func"}
    write_json(
        out / "restore.json",
        {"run": args.run, "model": model.name, "data": ds.info.name, "task": args.task, "classifier": name,
         "rows": ["original", "observation", *rows], "settings": settings, "methods": results},
    )  # fmt: skip
    print(f"wrote {out / 'restore.json'} and {out / 'restore.png'} (rows: original, observation, {', '.join(rows)})")
    return 0


def _viewable(deg, y):
    """The observation as an image of the examples' size: hidden pixels mid-grey, blocks repeated."""
    import torch

    if deg.kind == "inpaint":
        return torch.where(deg.mask, y, torch.full_like(y, 0.5))
    if deg.kind == "downsample":
        return y.repeat_interleave(deg.factor, -2).repeat_interleave(deg.factor, -1)
    return y.clamp(0, 1)
