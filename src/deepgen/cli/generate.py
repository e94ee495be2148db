"""deepgen complete / edit / translate: generation driven by an input, for models that offer it.

Each is a declared capability (``model.capabilities()``); a model that does not offer one says so
in one line and names the registered models that do.
"""

from __future__ import annotations

from pathlib import Path

from deepgen.cli.common import EXAMPLES_FMT, add_data_args, add_sample_args, labels_for, sample_options, spec_for_run

EPILOG = {
    "complete": """Examples:
  deepgen complete runs/pixelcnn-digits --data digits --mask bottom-half --out completions.png
  deepgen complete runs/made-bin --mask random:0.3 -n 16 --samples 4 --out c.npy
Masks: {masks}. PNG rows: original, observed part, then --samples completions.
Models that offer it: {models}.
""",
    "edit": """Examples:
  deepgen edit runs/ddpm-digits --data digits --strength 0.5 --out edits.png
PNG rows: original, then --samples edits (strength 0 keeps x, 1 samples afresh).
Models that offer it: {models}.
""",
    "translate": """Examples:
  deepgen translate runs/cyclegan-digits --data domains:digits-inverted --out translated.png
PNG rows: original, translation. Models that offer it: {models}.
""",
}

HELP = {
    "complete": "fill in the unobserved part of examples (inpainting)",
    "edit": "partially noise examples and denoise them",
    "translate": "map examples to the other domain",
}


def add_parser(sub):
    from deepgen.masks import MASKS

    for cap in ("complete", "edit", "translate"):
        p = sub.add_parser(
            cap,
            help=HELP[cap],
            formatter_class=EXAMPLES_FMT,
            epilog=EPILOG[cap].format(masks=", ".join(MASKS), models=_models_with(cap)),
            description=f"{HELP[cap].capitalize()} with the model in RUN (test split of DATA, default the run's).",
        )
        p.add_argument("run", metavar="RUN")
        add_data_args(p, required=False)
        p.add_argument("--out", required=True, help="output .png (grid) or .npy (the data's own units)")
        p.add_argument("-n", type=int, default=8, help="number of examples (default 8)")
        p.add_argument("--samples", type=int, default=3, help="results per example (default 3)")
        if cap == "complete":
            p.add_argument("--mask", default="bottom-half", help="which part to fill in (default bottom-half)")
        if cap == "edit":
            p.add_argument("--strength", type=float, default=0.5, help="noise level in [0, 1] (default 0.5)")
        p.add_argument("--weights", choices=["auto", "ema", "raw"], default="auto")
        p.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda or cuda:N")
        p.add_argument("--seed", type=int, default=0)
        add_sample_args(p)
        p.set_defaults(func=run, capability=cap)


def _models_with(cap: str) -> str:
    from deepgen.registry import model_names_with

    return ", ".join(model_names_with(cap)) or "none registered yet"


def run(args) -> int:
    import numpy as np
    import torch

    from deepgen.data import check_compatible, load_dataset, load_eval_split
    from deepgen.errors import DeepgenError
    from deepgen.masks import make_mask
    from deepgen.plots import save_image_grid
    from deepgen.train import load_run

    cap = args.capability
    out = Path(args.out)
    if out.suffix not in (".png", ".npy"):
        raise DeepgenError(f"--out must end in .png or .npy, got {out.name!r}")
    if args.n <= 0 or args.samples <= 0:
        raise DeepgenError("-n and --samples must be positive")
    loaded = load_run(args.run, device=args.device, weights=args.weights)
    model, info = loaded.model, loaded.info
    if not model.supports(cap):
        raise model._unsupported(cap)
    opts = sample_options(args)
    spec = spec_for_run(args, loaded.data_spec)
    split, data_info = load_eval_split(spec, info)
    check_compatible(info, data_info)
    if cap == "translate" and opts.get("direction") == "b2a" and data_info.kind == "domains":
        split = load_dataset(spec, info).container.b.test  # translating B -> A starts from domain B
    x = split.x[: args.n].to(loaded.device)
    n = len(x)
    y = labels_for(args, model, n)
    if y is None and model.conditional and split.y is not None:
        y = split.y[:n].to(loaded.device)
    g = torch.Generator(device=loaded.device).manual_seed(args.seed)
    rows = [x]
    with torch.no_grad():
        if cap == "complete":
            mask = make_mask(args.mask, tuple(info.shape), torch.Generator().manual_seed(args.seed))
            mask = mask.to(loaded.device).expand_as(x)
            rows.append(torch.where(mask, x, torch.full_like(x, 0.5)))  # grey = to be filled in
            results = [model.complete(x, mask, generator=g, y=y, **opts) for _ in range(args.samples)]
        elif cap == "edit":
            if not 0 <= args.strength <= 1:
                raise DeepgenError(f"--strength must lie in [0, 1], got {args.strength}")
            results = [model.edit(x, args.strength, generator=g, y=y, **opts) for _ in range(args.samples)]
        else:
            results = [model.translate(x, generator=g, **opts) for _ in range(args.samples)]
    rows += results
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        to_b = cap == "translate" and getattr(info, "domain_b", None) and opts.get("direction") != "b2a"
        out_info = info.domain_b if to_b else info
        np.save(out, np.stack([out_info.to_raw(r) for r in results], 1))  # (n, samples, *shape)
    elif info.is_image and all(r.shape == x.shape for r in rows):
        save_image_grid(torch.cat([r.cpu() for r in rows]), out, nrow=n)
    else:
        raise DeepgenError(f"PNG output needs images of one shape; {info.name} has shape {info.shape}: use .npy")
    print(f"wrote {len(results)} x {n} results of {cap} by {model.name} ({loaded.path}) to {out}")
    return 0
