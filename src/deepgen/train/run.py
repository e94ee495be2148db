"""Build models by name, load trained runs back, and start a new model from part of a trained one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deepgen.config import CONFIG_VERSION, from_dict
from deepgen.data import DataInfo, DataSpec
from deepgen.errors import CheckpointError, ConfigError, shorten
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
    device: torch.device = torch.device("cpu")  # where the model's weights are


def load_run(path: str | Path, *, device: str | torch.device = "cpu", weights: str = "auto") -> LoadedRun:
    """Load a run directory (or a checkpoint file) for sampling and scoring.

    ``weights``: ``"ema"`` or ``"raw"``; ``"auto"`` uses the EMA weights when the run kept them
    (training then evaluated with them too). ``device``: as ``--device`` (``auto``, ``cpu``, ``cuda``,
    ``cuda:N``; a missing GPU is a one-line ConfigError). The model is returned in eval mode.
    """
    from deepgen.train.distributed import pick_device

    device = pick_device(device) if isinstance(device, str) else torch.device(device)
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
        raise CheckpointError(
            f"{path}: checkpoint does not match model {ckpt['model_name']!r} ({shorten(msg)})"
        ) from None
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
    return LoadedRun(model, info, spec, tcfg, int(ckpt["step"]), run_dir, "ema" if use_ema else "raw", device)


_MODULE_PATH = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*)?$")


def parse_init_spec(spec: str) -> tuple[Path, str, str]:
    """``RUN[:SRC[=DST]]`` -> (run path, source submodule, target submodule); "" is the whole model.

    ``RUN:encoder`` loads the run's ``encoder`` into the new model's ``encoder``;
    ``RUN:=vqvae`` loads the whole run into the new model's ``vqvae``; ``RUN:net=prior.net`` maps
    one dotted path onto another. A ``RUN`` path that exists as written is never split on ``:``.
    """
    if ":" not in spec or Path(spec).exists():
        return Path(spec), "", ""
    run, _, part = spec.rpartition(":")
    src, eq, dst = part.partition("=")
    if not eq:
        dst = src
    for name in (src, dst):
        if not _MODULE_PATH.match(name):
            raise ConfigError(f"--init-from {spec}: {name!r} is not a submodule path (e.g. encoder or vq.encoder)")
    return Path(run), src, dst


def _submodule(model: torch.nn.Module, path: str, what: str, spec: str, hint: str = "") -> torch.nn.Module:
    if not path:
        return model
    try:
        return model.get_submodule(path)
    except AttributeError:
        children = ", ".join(n for n, _ in model.named_children()) or "none"
        raise ConfigError(
            f"--init-from {spec}: {what} has no submodule {path!r} (its submodules: {children}){hint}"
        ) from None


def init_from(model: GenerativeModel, spec: str, *, strict: bool = True) -> dict[str, Any]:
    """Copy trained weights from run ``RUN`` into (part of) ``model``; returns a provenance record.

    ``spec`` is ``RUN[:SRC[=DST]]`` (see :func:`parse_init_spec`). The weights are those the source
    run evaluates with (its EMA when it kept one). ``strict`` (default) requires the two parts to
    hold exactly the same tensor names; shapes must match in any case. Every problem is one
    :class:`ConfigError` line. Multi-stage models (a VQ-VAE's learned prior, latent or absorbing
    diffusion over a trained autoencoder) start from a trained first stage this way:

    Example (needs a trained VQ-VAE run and a prior model with a ``.vqvae`` part):

        init_from(prior_model, "runs/vqvae:=vqvae")     # the whole VQ-VAE run into .vqvae

    A run of a few steps is enough to show copying just the encoder:

    >>> from deepgen.data import load_dataset
    >>> from deepgen.train.engine import Trainer, TrainConfig
    >>> data = load_dataset("moons")
    >>> cfg = TrainConfig(steps=2, eval_every=0, progress=False)
    >>> _ = Trainer(build_model("vae", data.info, seed=0), data, cfg, "runs/vae", plots=False, quiet=True).fit()
    >>> model = build_model("vae", data.info, seed=1)
    >>> record = init_from(model, "runs/vae:encoder")            # just the encoder
    >>> record["source"], record["target"], record["source_step"]
    ('encoder', 'encoder', 2)

    The weights are copied into ``model``'s own tensors, so a checkpoint of the new run holds them
    and loading it never reads ``RUN`` again.
    """
    run, src, dst = parse_init_spec(spec)
    loaded = load_run(run)
    source = loaded.model
    hint = ""
    if src and src == dst and src.split(".")[0] not in dict(source.named_children()):
        hint = f"; to load the whole run into {dst!r} write {run}:={dst}"
    src_mod = _submodule(source, src, f"run {run} ({source.name})", spec, hint)
    dst_mod = _submodule(model, dst, f"the new model ({model.name})", spec)
    state, target = src_mod.state_dict(), dst_mod.state_dict()
    prefix = f"{dst}." if dst else ""
    for k, v in state.items():
        if k in target and tuple(target[k].shape) != tuple(v.shape):
            raise ConfigError(
                f"--init-from {spec}: {prefix}{k} has shape {tuple(target[k].shape)} in the new model "
                f"but {tuple(v.shape)} in {run} (different model options?)"
            )
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensor(s) of the new part not in the run (e.g. {prefix}{missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} tensor(s) of the run not in the new part (e.g. {unexpected[0]})")
        raise ConfigError(f"--init-from {spec}: the parts differ: {'; '.join(parts)}")
    with torch.no_grad():
        for k, v in state.items():
            if k in target:
                target[k].copy_(v)  # state_dict tensors share storage with the model's
    return {
        "spec": spec,
        "run": str(run.resolve()),
        "source_model": source.name,
        "source_step": loaded.step,
        "weights": loaded.weights,
        "source": src,
        "target": dst,
        "tensors": sum(k in target for k in state),
    }
