"""deepgen download: fetch datasets or weights, checksummed (for machines with internet)."""

from __future__ import annotations

from deepgen.cli.common import EXAMPLES_FMT

EPILOG = """Examples:
  deepgen download mnist --data-dir ~/data          # then: deepgen train vae --data mnist --data-dir ~/data
  deepgen download fid-inception --data-dir ~/data  # the standard FID InceptionV3 weights
Tests and the demo never download anything.
"""


def add_parser(sub):
    p = sub.add_parser(
        "download",
        help="download MNIST or the FID Inception weights (needs internet)",
        formatter_class=EXAMPLES_FMT,
        epilog=EPILOG,
        description="Download a file set into --data-dir and verify its checksums.",
    )
    p.add_argument("what", choices=["mnist", "fid-inception"])
    p.add_argument("--data-dir", required=True)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.what == "mnist":
        from deepgen.data.images import download_mnist

        dest = download_mnist(args.data_dir)
    else:
        from deepgen.metrics.inception import download_fid_inception

        dest = download_fid_inception(args.data_dir)
    print(f"downloaded and verified: {dest}")
    return 0
