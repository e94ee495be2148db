"""deepgen list: models (family, density kind) and datasets."""

from __future__ import annotations

import dataclasses

from deepgen.cli.common import EXAMPLES_FMT


def add_parser(sub):
    p = sub.add_parser(
        "list",
        help="list models and datasets",
        formatter_class=EXAMPLES_FMT,
        description="List the registered models (family, density kind) and the datasets.",
        epilog="Examples:\n  deepgen list\n  deepgen list --models --verbose",
    )
    p.add_argument("--models", action="store_true", help="only models")
    p.add_argument("--datasets", action="store_true", help="only datasets")
    p.add_argument("-v", "--verbose", action="store_true", help="also show each model's options")
    p.set_defaults(func=run)


def run(args) -> int:
    from deepgen.data import dataset_table
    from deepgen.registry import get_model_class, model_table

    both = not (args.models or args.datasets)
    if args.models or both:
        rows = model_table()
        w = max(len(r["name"]) for r in rows)
        fw = max(len(r["family"]) for r in rows)
        dw = max(len(r["density"]) for r in rows)
        print(f"{'MODEL':<{w}}  {'FAMILY':<{fw}}  {'DENSITY':<{dw}}  DESCRIPTION")
        for r in rows:
            print(f"{r['name']:<{w}}  {r['family']:<{fw}}  {r['density']:<{dw}}  {r['summary']}")
            if args.verbose:
                for f in dataclasses.fields(get_model_class(r["name"]).Config):
                    print(f"{'':<{w}}    -o {f.name}={f.default!r}")
        print()
    if args.datasets or both:
        rows = dataset_table()
        w = max(len(r["name"]) for r in rows)
        print(f"{'DATASET':<{w}}  DESCRIPTION")
        for r in rows:
            print(f"{r['name']:<{w}}  {r['description']}")
    return 0
