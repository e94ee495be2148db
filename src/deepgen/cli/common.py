"""Arguments and helpers shared by several subcommands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deepgen.config import from_dict, load_file, parse_overrides, to_dict
from deepgen.data import DataSpec

EXAMPLES_FMT = argparse.RawDescriptionHelpFormatter


def add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        required=required,
        metavar="DATA",
        help="dataset name (see 'deepgen list'), a .npy/.csv file, or a folder of images",
    )
    g.add_argument("--data-dir", help="folder with MNIST files (default: $DEEPGEN_DATA)")
    g.add_argument(
        "--binarize",
        choices=["none", "dynamic", "threshold"],
        default=None,
        help="binarise discrete data: dynamic (fresh Bernoulli draws per batch) or threshold",
    )
    g.add_argument("--image-size", type=int, help="resize an image folder to N x N")
    g.add_argument("--channels", type=int, choices=[1, 3], help="image folder: 1 grey, 3 RGB")
    g.add_argument("--levels", type=int, help="a file's values are integers 0..L-1 (2 = binary)")
    g.add_argument("--no-standardize", action="store_true", help="do not standardise continuous files")
    g.add_argument(
        "--continuous",
        action="store_true",
        help="treat a file of integers as real-valued data (standardised) instead of discrete levels",
    )
    g.add_argument(
        "--classes",
        type=parse_classes,
        metavar="C[,C...]",
        help="keep only the examples of these classes (labelled data), e.g. 0-8 or 1,7",
    )


def parse_classes(text: str) -> tuple[int, ...]:
    """``"0-8"``, ``"1,7"`` or ``"0-3,9"`` -> a tuple of class labels."""
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            out.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    except ValueError:
        raise argparse.ArgumentTypeError(f"classes: expected labels like 0-8 or 1,7, got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError(f"classes: no labels in {text!r}")
    return tuple(out)


def data_spec(args, base: dict | None = None) -> DataSpec:
    """DataSpec from ``--data`` flags over ``base`` (a config file's [data] table)."""
    d = dict(base or {})
    d["name"] = args.data
    for flag, key in (
        ("data_dir", "data_dir"),
        ("binarize", "binarize"),
        ("image_size", "image_size"),
        ("channels", "channels"),
        ("levels", "levels"),
        ("classes", "classes"),
    ):
        v = getattr(args, flag, None)
        if v is not None:
            d[key] = v
    if getattr(args, "no_standardize", False):
        d["standardize"] = False
    if getattr(args, "continuous", False):
        d["continuous"] = True
    return from_dict(DataSpec, d)


def spec_for_run(args, run_spec: DataSpec) -> DataSpec:
    """The data to score/evaluate: ``--data`` if given (keeping the run's options), else the run's."""
    if not getattr(args, "data", None):
        return run_spec
    d = to_dict(run_spec)
    d["name"] = args.data
    if args.data != run_spec.name:
        d.pop("levels", None)
    spec_args = data_spec(args, d)
    return spec_args


def read_config_file(path: str | None) -> dict:
    if not path:
        return {}
    cfg = load_file(path)
    unknown = set(cfg) - {"model", "train", "data", "model_name"}
    if unknown:
        from deepgen.errors import ConfigError

        raise ConfigError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}; use [model], [train], [data]")
    return cfg


def model_options(cfg_file: dict, overrides: list[str] | None) -> dict:
    opts = dict(cfg_file.get("model", {}))
    opts.update(parse_overrides(overrides))
    return opts


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n")


def fmt(v, digits: int = 4) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e5 else f"{v:.3e}"
    return str(v)


def add_sample_args(p: argparse.ArgumentParser, per_model: bool = False) -> None:
    """``-s KEY=VALUE`` sampling options and ``--label/--labels`` for conditional models."""
    g = p.add_argument_group("sampling")
    meta = "MODEL.KEY=VALUE" if per_model else "KEY=VALUE"
    g.add_argument(
        "-s",
        "--sample-option",
        action="append",
        metavar=meta,
        help="a sampling option of the model (see 'deepgen list -v'), e.g. -s steps=50 -s sampler=ddim",
    )
    if not per_model:
        g.add_argument("--label", type=int, help="class of every sample (conditional models)")
        g.add_argument("--labels", help="comma-separated classes, cycled over the samples (conditional models)")


def sample_options(args) -> dict:
    """``{key: value}`` from repeated ``-s KEY=VALUE`` (typed later by the model's SampleConfig)."""
    return parse_overrides(getattr(args, "sample_option", None))


def labels_for(args, model, n: int):
    """(n,) labels from ``--label``/``--labels`` (None when neither is given); checked by the model."""
    import torch

    from deepgen.errors import ConfigError

    if getattr(args, "label", None) is not None and getattr(args, "labels", None):
        raise ConfigError("give --label or --labels, not both")
    if getattr(args, "label", None) is not None:
        y = torch.full((n,), args.label, dtype=torch.long)
    elif getattr(args, "labels", None):
        try:
            vals = [int(v) for v in args.labels.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--labels must be comma-separated integers, got {args.labels!r}") from None
        if not vals:
            raise ConfigError("--labels is empty")
        y = torch.tensor(vals, dtype=torch.long).repeat(n // len(vals) + 1)[:n]
    else:
        return None
    return model.check_labels(y, n)


def add_app_output_args(p: argparse.ArgumentParser) -> None:
    """``--out`` (a folder), ``--device`` and ``--seed``: what every application command takes."""
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)


def duration(text: str) -> float:
    """argparse type of ``--time-limit``: seconds from ``2h``, ``45m``, ``1h30m`` or a number of seconds."""
    from deepgen.config import parse_duration
    from deepgen.errors import ConfigError

    try:
        return parse_duration(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
