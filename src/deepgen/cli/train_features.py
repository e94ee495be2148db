"""deepgen train-features: train the small domain classifiers used as FID/KID/PR/IS feature networks."""

from __future__ import annotations

import json
from pathlib import Path

from deepgen.cli.common import EXAMPLES_FMT

EPILOG = """Examples:
  deepgen train-features --data digits --out runs/features-digits.pt
  deepgen train-features --data mnist --data-dir ~/data --out runs/features-mnist.pt
  deepgen train-features --data mnist --data-dir ~/data --install   # replace the shipped weights
Use a trained file with 'deepgen eval RUN --features FILE'.
"""


def add_parser(sub):
    p = sub.add_parser(
        "train-features",
        help="train the digits/MNIST feature networks",
        formatter_class=EXAMPLES_FMT,
        epilog=EPILOG,
        description="Train deepgen's domain classifier for DATA (digits or mnist), report its "
        "test accuracy, and save it.",
    )
    p.add_argument("--data", required=True, choices=["digits", "mnist"])
    p.add_argument("--data-dir", help="folder with MNIST files (default: $DEEPGEN_DATA)")
    p.add_argument("--epochs", type=int, help="default 60 (digits) / 8 (mnist)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output .pt file (default runs/features-DATA.pt)")
    p.add_argument("--install", action="store_true", help="write into the package's shipped weights")
    p.set_defaults(func=run)


def run(args) -> int:
    from deepgen.metrics import features as F

    name = f"deepgen-{args.data}"
    net, report = F.train_feature_network(name, args.data_dir, epochs=args.epochs, seed=args.seed)
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
