"""Build models by name and load trained runs back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deepgen.config import CONFIG_VERSION, from_dict
from deepgen.data import DataInfo, DataSpec
from deepgen.errors import CheckpointError, ConfigError
from deepgen.models.base import GenerativeModel
from deepgen.registry import get_model_class
from deepgen.train.checkpoint import load_checkpoint
from deepgen.train.config import TrainConfig


def build_model(
    name: str, info: DataInfo, options: dict[str, Any] | None = None, *, seed: int | None = None
) -> GenerativeModel:
    """Construct registered model ``name`` for data ``info`` with config ``options`` (a dict).

    ``seed`` seeds torch before construction, so the initial weights are reproducible.

    >>> from deepgen.data import load_dataset
    >>> model = build_model("vae", load_dataset("digits").info, {"latent_dim": 8}, seed=0)
    """
    cls = get_model_class(name)
    cfg = from_dict(cls.Config, options or {})
    if seed is not None:
        torch.manual_seed(seed)
    return cls(info, cfg)


@dataclass
class LoadedRun:
    """A trained model and how it was trained."""

    model: GenerativeModel
    info: DataInfo
    data_spec: DataSpec
    train_config: TrainConfig
    step: int
    path: Path
    weights: str  # "ema" or "raw"


def load_run(path: str | Path, *, device: str | torch.device = "cpu", weights: str = "auto") -> LoadedRun:
    """Load a run directory (or a checkpoint file) for sampling and scoring.

    ``weights``: ``"ema"`` or ``"raw"``; ``"auto"`` uses the EMA weights when the run kept them
    (training then evaluated with them too). The model is returned in eval mode.
    """
    path = Path(path)
    ckpt = load_checkpoint(path, map_location=device)
    if ckpt.get("config_version", 1) > CONFIG_VERSION:
        raise CheckpointError(f"{path}: config version {ckpt['config_version']} is newer than this deepgen's")
    try:
        cls = get_model_class(ckpt["model_name"])
        info = DataInfo.from_dict(ckpt["data_info"])
        model = cls(info, from_dict(cls.Config, ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
        tcfg = from_dict(TrainConfig, ckpt["train_config"])
        spec = from_dict(DataSpec, ckpt.get("data_spec") or {"name": info.name})
    except (ConfigError, RuntimeError, KeyError, TypeError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: checkpoint does not match model {ckpt['model_name']!r} ({msg[:200]})") from None
    use_ema = ckpt.get("ema") is not None and weights in ("auto", "ema")
    if weights == "ema" and ckpt.get("ema") is None:
        raise CheckpointError(f"{path}: the run kept no EMA weights (train with --ema-decay)")
    if use_ema:
        params = [p for p in model.parameters() if p.dtype.is_floating_point]
        with torch.no_grad():
            for p, s in zip(params, ckpt["ema"]["shadow"], strict=True):
                p.copy_(s)
    model.to(device).eval()
    run_dir = path if path.is_dir() else path.parent
    return LoadedRun(model, info, spec, tcfg, int(ckpt["step"]), run_dir, "ema" if use_ema else "raw")
