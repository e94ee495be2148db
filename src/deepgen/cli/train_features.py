"""deepgen train-features: train a feature network for FID/KID/precision-recall on any image data.

The shipped networks (``deepgen-digits``, ``deepgen-mnist``) are classifiers of their datasets. For
anything else (an image folder, a ``.npy`` stack) this trains the same small CNN offline: a
classifier when labels exist (named datasets with classes, or a folder with one subfolder per
class), otherwise a self-supervised rotation predictor (Gidaris et al. 2018, arXiv:1803.07728),
and reports how good its features are before anyone trusts an FID computed with them.
"""

from __future__ import annotations

import json
from pathlib import Path

from deepgen.cli.common import EXAMPLES_FMT, add_data_args, data_spec

EPILOG = """Examples:
  deepgen train-features --data my_images/ --out runs/features-mine.pt       # any image folder or .npy
  deepgen train-features --data my_images/ --objective rotation --steps 1000
  deepgen train-features --data digits --out runs/features-digits.pt
  deepgen train-features --data mnist --data-dir ~/data --install   # replace the shipped weights
Use a trained file with 'deepgen eval RUN --features FILE' or 'deepgen compare ... --features FILE'.
A folder with one subfolder per class (DIR/cat/*.png, DIR/dog/*.png) trains a classifier; a flat
folder trains the self-supervised rotation objective.
"""

SHIPPED = {"digits": "deepgen-digits", "mnist": "deepgen-mnist"}


def add_parser(sub):
    p = sub.add_parser(
        "train-features",
        help="train a feature network (FID/KID/PR) on any image data",
        formatter_class=EXAMPLES_FMT,
        epilog=EPILOG,
        description="Train a small CNN whose features score samples of DATA (FID, KID, precision/recall): "
        "a classifier when the data have labels, a rotation predictor otherwise. Reports its held-out "
        "accuracy and the FID of held-out real images against the training images (the floor a "
        "perfect model reaches), and saves it.",
    )
    add_data_args(p)
    p.add_argument(
        "--objective",
        choices=["auto", "classify", "rotation"],
        default="auto",
        help="classify (needs labels), rotation (self-supervised) or auto (default: classify when labelled)",
    )
    p.add_argument("--steps", type=int, help="optimisation steps (default 500; ~1 min for 28x28 images on CPU)")
    p.add_argument("--epochs", type=int, help="digits/mnist shipped networks: default 60 (digits) / 8 (mnist)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output .pt file (default runs/features-DATA.pt)")
    p.add_argument("--install", action="store_true", help="digits/mnist: write into the package's shipped weights")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _shipped(args) -> bool:
    """The recipe behind the shipped weights: digits/MNIST classifiers trained for whole epochs."""
    return args.data in SHIPPED and args.objective in ("auto", "classify") and args.steps is None


def run(args) -> int:
    from deepgen.errors import ConfigError

    if args.install and not _shipped(args):
        raise ConfigError("--install replaces the shipped digits/mnist networks; use --out for other data")
    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}")
    if _shipped(args):
        return _run_shipped(args)
    return _run_any(args)


def _run_shipped(args) -> int:
    from deepgen.metrics import features as F

    name = SHIPPED[args.data]
    net, report = F.train_feature_network(
        name, args.data_dir, epochs=args.epochs, seed=args.seed, progress=not args.quiet
    )
    report["command"] = f"deepgen train-features --data {args.data}" + (
        f" --epochs {args.epochs}" if args.epochs else ""
    )
    out = F.WEIGHTS_DIR / F.FILES[name] if args.install else Path(args.out or f"runs/features-{args.data}.pt")
    report["sha256"] = F.save_feature_network(net, out, report)
    if args.install:
        meta = F.shipped_reports()
        meta[name] = report
        (F.WEIGHTS_DIR / "features.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(
        f"{name}: test accuracy {report['test_accuracy']:.4f} (binarised test images "
        f"{report['test_accuracy_binarized']:.4f}), {report['parameters']:,} parameters, "
        f"{report['train_seconds']} s"
    )
    print(f"wrote {out}")
    return 0


def training_images(spec):
    """(x_train, y_train, x_test, y_test) images in [0, 1] for a feature network; labels may be None.

    Named datasets: train+val against the test split, with their labels. User files: the file's own
    train/validation split; an image folder with one subfolder per class gives labels.
    """
    import torch

    from deepgen.data import NAMED, load_dataset, resolve_user_path
    from deepgen.data.files import split_indices
    from deepgen.data.images import folder_labels
    from deepgen.errors import DataError

    spec = resolve_user_path(spec)
    ds = load_dataset(spec)
    info = ds.info
    if not info.is_image or info.kind != "examples":
        raise DataError(
            f"{spec.name}: a feature network needs images (N, C, H, W); these are {info.describe()}, "
            "whose sample quality deepgen measures in data space"
        )
    if not info.is_discrete:
        raise DataError(
            f"{spec.name}: feature networks take pixel values in [0, 1]; these images are continuous "
            "(standardised): load 8-bit images, or integer data with --levels L"
        )
    if spec.name in NAMED:
        x = torch.cat([ds.train.x, ds.val.x])
        y = None if ds.train.y is None else torch.cat([ds.train.y, ds.val.y])
        return x, y, ds.test.x, ds.test.y
    y = y_test = None
    path = Path(spec.name)
    labels = folder_labels(path) if path.is_dir() else None
    if labels is not None:  # the same split load_dataset made (a folder is read into memory)
        tr, va = split_indices(len(labels[0]), spec.val_fraction, spec.seed)
        y, y_test = torch.from_numpy(labels[0][tr]), torch.from_numpy(labels[0][va])
    return ds.train.x, y, ds.val.x, y_test


def _run_any(args) -> int:
    from deepgen.metrics import features as F

    spec = data_spec(args)
    x, y, x_test, y_test = training_images(spec)
    stem = Path(args.data.rstrip("/")).stem or "data"
    net, report = F.train_features_on(
        x,
        y,
        x_test,
        y_test,
        objective=args.objective,
        steps=args.steps or 500,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.quiet,
        name=stem,
    )
    report["dataset"] = spec.name if spec.name in SHIPPED else str(Path(spec.name).expanduser().resolve())
    report["command"] = f"deepgen train-features --data {args.data} --objective {report['objective']}" + (
        f" --steps {args.steps}" if args.steps else ""
    )
    out = Path(args.out or f"runs/features-{stem}.pt")
    report["sha256"] = F.save_feature_network(net, out, report)
    n = report["test_examples"]
    if report["objective"] == "classify":
        head = f"test accuracy {report['test_accuracy']:.4f} on {n} held-out images"
    else:
        head = f"rotation accuracy {report['rotation_accuracy']:.4f} on {n} held-out images (self-supervised)"
    if report["knn_accuracy"] is not None:
        head += f", 5-NN accuracy of its features {report['knn_accuracy']:.4f}"
    print(f"{stem} features ({report['objective']}): {head}")
    print(
        f"  FID held-out real vs train {report['fid_held_out']:.4g} (the floor a perfect model reaches); "
        f"pixel-shuffled held-out images {report['fid_pixel_shuffled']:.4g} (should be far larger)"
    )
    print(f"  {report['parameters']:,} parameters, {report['steps']} steps, {report['train_seconds']} s")
    print(f"wrote {out}; use it with: deepgen eval RUN --features {out}")
    return 0
