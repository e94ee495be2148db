"""Shared by the benchmark scripts: result files with everything needed to reproduce a number."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }


def write_result(name: str, settings: dict, results, out: str | Path | None = None) -> Path:
    """Write ``benchmarks/results/NAME.json`` (or ``out``) with command, commit, date and machine."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "command": "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]),
        "commit": commit(),
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": settings,
        "results": results,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
