"""deepgen list: models (family, density kind) and datasets."""

from __future__ import annotations

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
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show each model's options (-o), sampling options (-s), likelihood methods and capabilities",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from deepgen.config import config_fields
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
                cls = get_model_class(r["name"])
                for flag, which in (("-o", "Config"), ("-s", "SampleConfig")):
                    for f in config_fields(cls, which):
                        opt = f"{flag} {f['name']}={_show(f['default'])}"
                        print(f"{'':<{w}}    {opt:<34} {f['help']}".rstrip())
                extras = []
                if cls.conditional:
                    extras.append("conditional (--label/--labels)")
                elif cls.condition_option:
                    extras.append(f"class-conditional with -o {cls.condition_option}=true (--label/--labels)")
                if cls.likelihood_methods:
                    extras.append(f"--method {'|'.join(cls.likelihood_methods)}")
                if r["capabilities"]:
                    extras.append("offers " + ", ".join(r["capabilities"]))
                if extras:
                    print(f"{'':<{w}}    " + "; ".join(extras))
        print()
    if args.datasets or both:
        rows = dataset_table()
        w = max(len(r["name"]) for r in rows)
        print(f"{'DATASET':<{w}}  DESCRIPTION")
        for r in rows:
            print(f"{r['name']:<{w}}  {r['description']}")
    return 0


def _show(v) -> str:
    """A default as the user would type it after ``-o KEY=``."""
    if isinstance(v, tuple):
        return ",".join(map(str, v))
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)
