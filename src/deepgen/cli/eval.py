"""deepgen eval: test NLL/bits-per-dim and every sample-quality metric that applies, labelled."""

from __future__ import annotations

from pathlib import Path

from deepgen.cli.common import (
    EXAMPLES_FMT,
    add_data_args,
    add_sample_args,
    fmt,
    sample_options,
    spec_for_run,
    write_json,
)

EPILOG = """Examples:
  deepgen eval runs/vae-digits                       # the run's own data (test split)
  deepgen eval runs/vae-digits --full                # the papers' budget (e.g. K = 5000 importance samples)
  deepgen eval runs/ddpm-digits -s sampler=ddim -s steps=50 --method ode
  deepgen eval runs/ddpm-mnist --method ode --examples 100 --n-samples 100   # a smaller budget
  deepgen eval runs/gan-mnist --data mnist --data-dir ~/data --n-samples 10000
  deepgen eval runs/x --features inception:~/data/pt_inception-2015-12-05-6726825d.pth
Writes RUN/eval.json (or --out). Metrics that do not apply print n/a with the reason.
"""


def add_parser(sub):
    p = sub.add_parser(
        "eval",
        help="evaluate a trained run",
        formatter_class=EXAMPLES_FMT,
        epilog=EPILOG,
        description="Evaluate RUN on the test split of DATA (default: the run's data).",
    )
    p.add_argument("run", metavar="RUN")
    add_data_args(p, required=False)
    p.add_argument("--out", help="JSON output (default RUN/eval.json)")
    p.add_argument("--k", type=int, help="Monte Carlo samples for bounds/estimates (default: the model's budget)")
    p.add_argument("--method", help="a likelihood method the model offers besides its default (deepgen list -v)")
    p.add_argument("--full", action="store_true", help="the papers' evaluation budget (slow; e.g. K = 5000)")
    p.add_argument(
        "--examples",
        type=int,
        metavar="N",
        help="score a seeded subset of N test examples (default: the model's budget, e.g. 500 for "
        "diffusion models; all with --full or for exact single-pass densities)",
    )
    p.add_argument("--n-samples", type=int, help="samples for quality metrics (default: size of the reference)")
    p.add_argument("--features", help="feature network: deepgen-digits, deepgen-mnist, inception:PATH or a file")
    p.add_argument("--weights", choices=["auto", "ema", "raw"], default="auto")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    add_sample_args(p)
    p.set_defaults(func=run)


def print_metrics(result: dict) -> None:
    """The metrics as aligned lines: value, its error, and how it was computed."""
    how = f", sampled with {result['sampling']}" if result.get("sampling") else ""
    print(f"{result['model']} ({result['family']}, density: {result['density_kind']}{how}) on {result['data']}")
    if result.get("n_samples"):
        print(f"  sample-quality metrics use {result['n_samples']:,} samples")
    width = max(len(m["label"]) for m in result["metrics"].values())
    for m in result["metrics"].values():
        if m["value"] is None:
            print(f"  {m['label']:<{width}}  n/a  ({m['reason']})")
            continue
        extra = ""
        if m.get("se") is not None:
            extra = f" +- {fmt(m['se'], 3)} (s.e.)"
        elif m.get("std") is not None:
            extra = f" +- {fmt(m['std'], 3)} (std)"
        elif m.get("sem") is not None:  # over test examples, with any Monte Carlo error in quadrature
            se = (m["sem"] ** 2 + (m.get("mc_stderr") or 0.0) ** 2) ** 0.5
            extra = f" +- {fmt(se, 3)} (s.e.)"
        if m.get("method"):
            extra += f"  [{m['method']}]"
        print(f"  {m['label']:<{width}}  {fmt(m['value'], 5)}{extra}")


def run(args) -> int:
    import torch

    from deepgen.data import check_compatible, load_dataset
    from deepgen.evaluate import evaluate
    from deepgen.train import load_run

    loaded = load_run(args.run, device=args.device, weights=args.weights)
    spec = spec_for_run(args, loaded.data_spec)
    ds = load_dataset(spec, loaded.info)
    check_compatible(loaded.info, ds.info)
    torch.manual_seed(args.seed)
    if getattr(args, "label", None) is not None or getattr(args, "labels", None):
        from deepgen.errors import ConfigError

        raise ConfigError("eval samples every class in turn; --label/--labels apply to 'deepgen sample'")
    result = evaluate(
        loaded.model,
        ds,
        k=args.k,
        method=args.method,
        full=args.full,
        examples=args.examples,
        n_samples=args.n_samples,
        seed=args.seed,
        features=args.features,
        sample_options=sample_options(args),
        progress=not args.quiet,
    )
    result.update({"run": str(loaded.path), "step": loaded.step, "weights": loaded.weights})
    print_metrics(result)
    out = Path(args.out) if args.out else loaded.path / "eval.json"
    write_json(out, result)
    print(f"wrote {out}")
    return 0
