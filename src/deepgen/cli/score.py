"""deepgen score: per-example NLL (nats, bits/dim) with a column saying exact / bound / estimate."""

from __future__ import annotations

import csv
from pathlib import Path

from deepgen.cli.common import EXAMPLES_FMT, add_data_args, spec_for_run

EPILOG = """Examples:
  deepgen score runs/vae-digits --data digits --out scores.csv          # test split, IS estimate K=100
  deepgen score runs/vae-digits --data digits --out scores.csv --k 1    # ELBO (lower bound), one draw
  deepgen score runs/vae-digits --out elbo.csv --method elbo --k 1000   # each example's ELBO, mean of 1000 draws
  deepgen score runs/gmm-moons --data points.csv --out scores.csv       # every row of your file, in order
  deepgen score runs/ddpm-digits --data digits --out s.csv --method ode # another number the model offers
Columns: index, nll_nats, bpd (discrete data only), stderr_nats (Monte Carlo error of estimates and of
--method elbo), kind, method; for an unnormalised model (an EBM): index, neg_energy (-E(x), not a
log-likelihood: log Z is unknown), kind, method.
Continuous data are scored in the file's own units (standardisation undone).
"""


def add_parser(sub):
    p = sub.add_parser(
        "score",
        help="per-example NLL of data under a trained run",
        formatter_class=EXAMPLES_FMT,
        epilog=EPILOG,
        description="Score every example of DATA under the model in RUN.",
    )
    p.add_argument("run", metavar="RUN")
    add_data_args(p, required=False)
    p.add_argument("--out", required=True, help="output CSV")
    p.add_argument("--k", type=int, help="Monte Carlo samples (default: the model's evaluation budget)")
    p.add_argument("--method", help="a likelihood method the model offers besides its default (deepgen list -v)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--weights", choices=["auto", "ema", "raw"], default="auto")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from deepgen.data import check_compatible, load_eval_split
    from deepgen.evaluate import default_k, log_likelihoods, summarize
    from deepgen.metrics.likelihood import bits_per_dim
    from deepgen.models.base import DensityKind
    from deepgen.train import load_run

    loaded = load_run(args.run, device=args.device, weights=args.weights)
    model, info = loaded.model, loaded.info
    model.check_method(args.method)
    if model.density_kind == DensityKind.NONE and args.method is None:
        raise model._no_density("log-likelihood to score")
    spec = spec_for_run(args, loaded.data_spec)
    split, data_info = load_eval_split(spec, info)
    check_compatible(info, data_info)
    torch.manual_seed(args.seed)
    ll = log_likelihoods(
        model, split.x, y=split.y, k=default_k(model, args.k), method=args.method, batch_size=args.batch_size
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if ll.kind == DensityKind.UNNORMALISED:
        with open(out, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["index", "neg_energy", "kind", "method"])
            for i, v in enumerate(ll.values.tolist()):
                w.writerow([i, f"{v:.6f}", ll.kind.value, ll.method])
        print(
            f"scored {len(ll.values)} examples of {spec.name}: mean -E(x) {ll.values.mean().item():.4f} "
            f"(unnormalised: log Z unknown, so this is not an NLL; {ll.method})"
        )
        print(f"wrote {out}")
        return 0
    offset = 0.0 if info.is_discrete else info.log_scale
    nll = (-ll.values + offset).tolist()
    se = ll.stderr.tolist() if ll.stderr is not None else None
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "nll_nats", "bpd", "stderr_nats", "kind", "method"])
        for i, v in enumerate(nll):
            bpd = f"{bits_per_dim(v, info.dim):.6f}" if info.is_discrete else ""
            err = f"{se[i]:.6f}" if se is not None else ""
            w.writerow([i, f"{v:.6f}", bpd, err, ll.kind.value, ll.method])
    s = summarize(ll, info)
    se = (s.sem**2 + (s.mc_stderr or 0.0) ** 2) ** 0.5  # test-set and Monte Carlo (incl. shared) errors
    bpd = f", {s.bpd:.4f} bits/dim" if s.bpd is not None else ""
    print(f"scored {s.n} examples of {spec.name}: mean NLL {s.nll:.4f} +- {se:.4f} nats{bpd} ({s.kind}: {s.method})")
    print(f"wrote {out}")
    return 0
