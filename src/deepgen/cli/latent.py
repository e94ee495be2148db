"""deepgen latent: explore a model's latent space (interpolations, traversals, encode and decode).

For every model with the ``encode`` capability (flows, VAEs): the test split of DATA (default the
run's) is encoded with ``model.encode`` and decoded with ``model.decode``. Sampling at reduced
temperature is ``deepgen sample RUN -o temperature=0.7``.
"""

from __future__ import annotations

from pathlib import Path

from deepgen.cli.common import EXAMPLES_FMT, add_data_args, spec_for_run

MODES = ("interpolate", "traverse", "reconstruct", "encode", "decode")

EPILOG = """Modes:
  interpolate  -n pairs of test examples; each row: x0, --steps points on the latent line, x1
               (the ends are reconstructions)
  traverse     one test example (--index); each row moves one latent coordinate through --steps
               values in [-span, span] (--dims, default the 8 that vary most over -n examples)
  reconstruct  rows: -n test examples, then their reconstructions decode(encode(x))
  encode       write the latents of -n test examples to --out .npy (shape (n, *latent))
  decode       decode the latents in --latents .npy to --out (.png or .npy in the data's units)

Examples:
  deepgen latent runs/vae-digits --mode interpolate -n 6 --steps 9 --out interp.png
  deepgen latent runs/vae-digits --mode traverse --span 2.5 --out traverse.png
  deepgen latent runs/glow-mnist --mode encode -n 100 --out z.npy
  deepgen latent runs/glow-mnist --mode decode --latents z.npy --out x.png
Models that offer it: {models}.
"""


def add_parser(sub):
    from deepgen.registry import model_names_with

    p = sub.add_parser(
        "latent",
        help="latent space: interpolations, traversals, encode and decode",
        formatter_class=EXAMPLES_FMT,
        epilog=EPILOG.format(models=", ".join(model_names_with("encode")) or "none registered yet"),
        description="Explore the latent space of the model in RUN (test split of DATA, default the run's).",
    )
    p.add_argument("run", metavar="RUN")
    add_data_args(p, required=False)
    p.add_argument("--mode", choices=MODES, default="interpolate", help="what to draw or write (default interpolate)")
    p.add_argument("--out", required=True, help="output .png (image grid) or .npy")
    p.add_argument("-n", type=int, default=6, help="examples (pairs for interpolate; default 6)")
    p.add_argument("--steps", type=int, default=9, help="points per row for interpolate / traverse (default 9)")
    p.add_argument("--span", type=float, default=3.0, help="traverse: values in [-span, span] (default 3)")
    p.add_argument("--dims", help="traverse: comma-separated latent coordinates (default: the 8 most active)")
    p.add_argument("--index", type=int, default=0, help="traverse: which test example (default 0)")
    p.add_argument("--latents", help="decode: a .npy of latents, shape (n, *latent)")
    p.add_argument("--weights", choices=["auto", "ema", "raw"], default="auto")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0, help="which test examples (interpolate pairs are drawn at random)")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np
    import torch

    from deepgen.data import check_compatible, load_eval_split
    from deepgen.errors import DeepgenError
    from deepgen.plots import save_image_grid
    from deepgen.train import load_run

    out = Path(args.out)
    if out.suffix not in (".png", ".npy"):
        raise DeepgenError(f"--out must end in .png or .npy, got {out.name!r}")
    if args.mode == "encode" and out.suffix != ".npy":
        raise DeepgenError("--mode encode writes latents: --out must end in .npy")
    if args.n <= 0:
        raise DeepgenError("-n must be positive")
    loaded = load_run(args.run, device=args.device, weights=args.weights)
    model, info = loaded.model, loaded.info
    if not model.supports("encode"):
        raise model._unsupported("encode")
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(grid: torch.Tensor, nrow: int, what: str) -> None:
        """grid (rows * nrow, *shape) of data in model units."""
        if out.suffix == ".npy":
            np.save(out, info.to_raw(grid.cpu()).reshape(-1, nrow, *info.shape))
        elif info.is_image:
            save_image_grid(grid.cpu(), out, nrow=nrow)
        else:
            raise DeepgenError(f"PNG output needs images; {info.name} has shape {info.shape}: use .npy")
        print(f"wrote {what} by {model.name} ({loaded.path}) to {out}")

    if args.mode == "decode":
        if not args.latents:
            raise DeepgenError("--mode decode needs --latents FILE.npy")
        z = torch.as_tensor(np.load(args.latents), dtype=next(model.parameters()).dtype, device=loaded.device)
        with torch.no_grad():
            x = model.decode(z)
        write(x, min(len(x), 10), f"{len(x)} decoded latents")
        return 0

    split, data_info = load_eval_split(spec_for_run(args, loaded.data_spec), info)
    check_compatible(info, data_info)
    xs, ys = split.x, split.y if model.conditional else None
    g = torch.Generator().manual_seed(args.seed)

    def take(idx):
        x = xs[idx].to(loaded.device)
        return x, (None if ys is None else ys[idx].to(loaded.device))

    with torch.no_grad():
        if args.mode == "encode":
            x, y = take(torch.arange(min(args.n, len(xs))))
            z = model.encode(x, y)
            np.save(out, z.cpu().numpy())
            print(f"wrote latents {tuple(z.shape)} of {len(x)} test examples by {model.name} to {out}")
            return 0
        if args.mode == "reconstruct":
            x, y = take(torch.arange(min(args.n, len(xs))))
            rec = model.decode(model.encode(x, y), y)
            write(torch.cat([x, rec]), len(x), f"{len(x)} reconstructions")
            return 0
        if args.mode == "interpolate":
            if len(xs) < 2:
                raise DeepgenError("interpolate needs at least 2 test examples")
            n = min(args.n, len(xs) // 2)
            idx = torch.randperm(len(xs), generator=g)[: 2 * n]
            (x0, y0), (x1, _) = take(idx[:n]), take(idx[n:])
            path = model.interpolate(x0, x1, steps=args.steps, y=y0)
            write(path.flatten(0, 1), args.steps, f"{n} interpolations of {args.steps} steps")
            return 0
        # traverse: the chosen example first, then others to rank the coordinates by activity
        if not 0 <= args.index < len(xs):
            raise DeepgenError(f"--index must lie in [0, {len(xs)}), got {args.index}")
        rest = [i for i in range(min(len(xs), max(args.n, 2) + 1)) if i != args.index][: max(args.n, 2) - 1]
        x, y = take(torch.tensor([args.index, *rest]))
        dims = None
        if args.dims:
            try:
                dims = [int(d) for d in args.dims.split(",") if d.strip()]
            except ValueError:
                raise DeepgenError(f"--dims must be comma-separated integers, got {args.dims!r}") from None
        grid, dims = model.traverse(x, dims=dims, steps=args.steps, span=args.span, y=y)
        write(grid.flatten(0, 1), args.steps, f"a traversal of latent coordinates {dims}")
        return 0
