"""The ``deepgen`` command (also ``python -m deepgen``).

Each subcommand lives in its own module with ``add_parser(subparsers)`` and ``run(args) -> int``.
User errors (:class:`deepgen.errors.DeepgenError`) print one line and exit with status 2 (3 when
training diverged); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from deepgen import __version__
from deepgen.errors import DeepgenError

COMMANDS = (
    "list",
    "train",
    "sample",
    "score",
    "eval",
    "compare",
    "generate",
    "latent",
    "cluster",
    "anomaly",
    "classify",
    "restore",
    "train_features",
    "download",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="deepgen",
        description="Deep generative models: train, sample, score, evaluate and compare every family.",
        epilog="Examples:\n  deepgen list\n  deepgen train vae --data digits --steps 2000\n"
        "  deepgen compare --data digits --models independent,vae,gan --out runs/cmp\n"
        "Run 'deepgen COMMAND --help' for each command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"deepgen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"deepgen.cli.{name}").add_parser(sub)
    for name, p in sub.choices.items():  # train and compare set threads themselves (per job, per run)
        if name not in OWN_THREADS:
            p.add_argument("--threads", type=int, metavar="N", help="torch threads (default: torch's, all cores)")
    return parser


#: commands whose --threads is their own (train: stored in the run; compare: per job) or that compute nothing
OWN_THREADS = {"train", "compare", "list", "download"}


def set_threads(args) -> None:
    """``--threads N`` of the commands that share it: torch's intra-op threads for this process."""
    n = getattr(args, "threads", None)
    if n is None or args.command in OWN_THREADS:
        return
    if n < 1:
        raise DeepgenError(f"--threads must be at least 1, got {n}")
    import torch

    torch.set_num_threads(n)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    rank = os.environ.get("RANK")
    from deepgen.train.distributed import interrupt_on_sigterm

    old_sigterm = interrupt_on_sigterm()  # SIGTERM (torchrun, schedulers, kill) ends a run like Ctrl-C
    try:
        set_threads(args)
        return int(args.func(args) or 0)
    except DeepgenError as e:
        prefix = f"deepgen (rank {rank}): error" if rank not in (None, "0") else "deepgen: error"
        print(f"{prefix}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        if rank in (None, "0"):  # one line, not one per torchrun worker
            print("deepgen: interrupted", file=sys.stderr)
        return 130
    finally:
        if old_sigterm is not None:
            signal.signal(signal.SIGTERM, old_sigterm)
