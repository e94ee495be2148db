"""The files of a run folder besides the checkpoint: ``config.json`` and ``metrics.jsonl``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from deepgen import __version__
from deepgen.config import CONFIG_VERSION, to_dict


def write_config(out: Path, model, data_spec, info, train_config, world_size: int, init_from=None) -> None:
    """``config.json``: what was trained, on what, how; ``init_from`` records where a fresh run's
    initial weights came from (provenance only: the run's checkpoint is self-contained)."""
    cfg = {
        "deepgen_version": __version__,
        "config_version": CONFIG_VERSION,
        "model": model.name,
        "family": model.family,
        "model_config": to_dict(model.config),
        "data": to_dict(data_spec),
        "data_info": info.to_dict(),
        "train": to_dict(train_config),
        "world_size": world_size,
        "parameters": model.num_parameters,
        "command": sys.argv,
    }
    if init_from is not None:
        cfg["init_from"] = init_from
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")


class MetricsLog:
    """Append-only ``metrics.jsonl``; on resume, lines past the checkpoint's step are dropped."""

    def __init__(self, path: Path, keep_until_step: int = 0):
        keep = []
        if keep_until_step and path.exists():
            for line in path.read_text().splitlines():
                try:
                    if json.loads(line).get("step", 0) <= keep_until_step:
                        keep.append(line)
                except json.JSONDecodeError:
                    continue
        path.write_text("".join(line + "\n" for line in keep))
        self._fh = open(path, "a", buffering=1)

    def write(self, record: dict) -> None:
        self._fh.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self._fh.close()
