"""The engine's checkpointing: what a checkpoint holds, when a run may resume, and how it is restored.

A checkpoint is the whole state of the loop, so that resuming is bit-identical: model, optimisers,
EMA, step, batches drawn, every rank's RNG states, and every rank's *per-rank buffers*.

Per-rank buffers are the buffers a model names in ``per_rank_buffers`` (a class attribute, e.g.
``("replay",)`` for an EBM's replay buffer or persistent chains): state that differs by design
between ranks. They are not broadcast from rank 0 at a fresh start, not synchronised by the DDP
wrapper, gathered from every rank into the checkpoint (``checkpoint["per_rank_buffers"][rank]``),
and each rank gets its own back on resume. ``checkpoint["model"]`` holds rank 0's, which is what
``load_run`` (sampling, evaluation) uses.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING

import torch

from deepgen import __version__
from deepgen.config import CONFIG_VERSION, to_dict
from deepgen.errors import ConfigError, DeepgenError
from deepgen.train import distributed as D
from deepgen.train.checkpoint import FORMAT, FORMAT_VERSION, load_checkpoint, save_atomic
from deepgen.train.config import RESUMABLE_CHANGES

if TYPE_CHECKING:
    from deepgen.train.engine import Trainer


def per_rank_buffer_names(model: torch.nn.Module) -> tuple[str, ...]:
    """The model's ``per_rank_buffers`` (read from its class), checked to name real buffers."""
    names = tuple(getattr(type(model), "per_rank_buffers", ()) or ())
    buffers = dict(model.named_buffers())
    missing = [n for n in names if n not in buffers]
    if missing:
        raise ConfigError(f"{type(model).__name__}.per_rank_buffers names {missing[0]!r}, which is not a buffer")
    return names


def rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def fresh_best() -> dict:
    """The best-checkpoint state before any evaluation: no step, an NLL of +inf, no stale evaluations."""
    return {"step": None, "nll": math.inf, "stale": 0}


def checkpoint_dict(t: Trainer, rng_states: list, per_rank: list | None = None) -> dict:
    ckpt = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config_version": CONFIG_VERSION,
        "deepgen_version": __version__,
        "model_name": t.model.name,
        "model_config": to_dict(t.model.config),
        "data_info": t.data.info.to_dict(),
        "data_spec": to_dict(t.data_spec),
        "train_config": to_dict(t.config),
        "step": t.step,
        "batches_drawn": t.batches_drawn,
        "model": t.model.state_dict(),
        "optimizers": {k: v.state_dict() for k, v in t.optimizers.items()},
        "ema": None if t.ema is None else t.ema.state_dict(),
        "rng": rng_states,
        "per_rank_buffers": per_rank,
        "best": dict(t.best),
        "elapsed": t.elapsed,  # wall-clock seconds of the training loop so far (time_limit)
    }
    if t.init_source is not None:  # provenance only: loading this checkpoint never reads the source
        ckpt["init_from"] = t.init_source
    return ckpt


def save_checkpoint(t: Trainer) -> None:
    """Write ``checkpoint.pt`` atomically: rank 0 writes, with every rank's RNG and per-rank buffers.

    Parameters are checked first: a finite loss with an infinite gradient can leave NaN weights,
    and such a state must never replace the last good checkpoint.
    """
    named = list(t.model.named_parameters())
    if named:
        finite = torch.stack([torch.isfinite(p).all() for _, p in named]).tolist()  # one device sync
        if not all(finite):
            t._diverged(t.step - 1, f"parameter {named[finite.index(False)][0]!r}", "non-finite")
    names = per_rank_buffer_names(t.model)
    buffers = dict(t.model.named_buffers())
    mine = {
        "rng": rng_state(t.dist.device),
        "buffers": {n: buffers[n].detach().cpu().clone() for n in names},
    }
    gathered = D.all_gather_object(mine, t.dist)  # one collective for both
    if t.dist.is_main:
        states = [{k: v.cpu() for k, v in g["rng"].items()} for g in gathered]
        per_rank = [g["buffers"] for g in gathered] if names else None
        save_atomic(checkpoint_dict(t, states, per_rank), t.checkpoint_path)
    t.last_checkpoint_step = t.step


def save_best(t: Trainer) -> None:
    """Write ``best.pt`` atomically (rank 0, right after an evaluation): the checkpoint format with
    this rank's RNG state, for ``load_run``/``deepgen eval``/``sample`` (training resumes from
    ``checkpoint.pt``). Written from the weights as they are, raw and EMA, like ``checkpoint.pt``."""
    save_atomic(checkpoint_dict(t, [rng_state(t.dist.device)]), t.best_path)


def track_best(t: Trainer, ev: dict[str, float]) -> None:
    """After an evaluation (rank 0): write ``best.pt`` when the validation NLL is the lowest so far,
    and count the evaluations since the last improvement (``t.best["stale"]``, which ``patience`` reads)."""
    if "nll" not in ev:
        what = ", ".join(sorted(ev)) or "nothing"
        raise ConfigError(
            f"--keep-best and --patience watch the validation NLL, but {t.model.name} reports {what} on validation data"
        )
    value = float(ev["nll"])
    if math.isfinite(value) and value < t.best["nll"]:
        t.best = {"step": t.step, "nll": value, "stale": 0}
        save_best(t)
    else:
        t.best = {**t.best, "stale": t.best["stale"] + 1}


def check_best_file(t: Trainer, resumed: bool) -> None:
    """A fresh run removes an earlier run's ``best.pt``. A resumed run keeps it when it holds the
    checkpoint's best step; one written after the checkpoint (by a run that then stopped before
    its next checkpoint) is from steps about to be retrained, so it goes, with the best so far."""
    path = t.best_path
    if not path.exists() or (resumed and not t.config.tracks_best):
        return
    if resumed:
        step = load_checkpoint(path)["step"]
        if step == t.best["step"]:
            return
        if not t.quiet:
            print(f"{path} is from step {step}, not the checkpoint's best; removed", file=sys.stderr)
        t.best = fresh_best()
    path.unlink()


def same_model_options(config, saved: dict) -> bool:
    """Whether ``config`` is the model configuration ``saved`` in a checkpoint. An option added to
    the model after the run was written is absent from ``saved``; it matches at its default, which
    reproduces the model the run trained."""
    now = to_dict(config)
    try:
        defaults = to_dict(type(config)())
    except (TypeError, DeepgenError):  # a config with required fields: no default to fall back on
        defaults = {}
    if not set(saved) <= set(now):  # the run has an option this model no longer has
        return False
    missing = object()  # an option neither saved nor with a default matches nothing
    return all(saved.get(k, defaults.get(k, missing)) == v for k, v in now.items())


def check_resumable(t: Trainer, ckpt: dict) -> None:
    where = t.checkpoint_path
    if ckpt["model_name"] != t.model.name:
        raise DeepgenError(f"{where}: run trained {ckpt['model_name']!r}, not {t.model.name!r}")
    if not same_model_options(t.model.config, ckpt["model_config"]):
        raise DeepgenError(f"{where}: model options differ from the run's; resume with the run's options")
    if ckpt["data_info"] != t.data.info.to_dict():
        raise DeepgenError(
            f"{where}: run was trained on {ckpt['data_info']['name']} {tuple(ckpt['data_info']['shape'])}, "
            f"not {t.data.info.describe()}; resume with the run's data"
        )
    old, new = ckpt["train_config"], to_dict(t.config)
    allowed = set(RESUMABLE_CHANGES)
    if new.get("lr_schedule") != "constant":
        allowed -= {"steps", "time_limit"}  # the schedule's shape depends on both
    # fields added after a run was written take their defaults, which reproduce the old behaviour
    defaults = to_dict(type(t.config)())
    diff = [k for k in new if k not in allowed and old.get(k, defaults.get(k)) != new[k]]
    if diff:
        detail = ", ".join(f"{k} (run: {old.get(k, defaults.get(k))!r}, now: {new[k]!r})" for k in diff)
        why = (
            " (with a cosine schedule the learning rates depend on steps and time_limit: resume with the run's)"
            if {"steps", "time_limit"} & set(diff)
            else ""
        )
        raise DeepgenError(f"{where}: cannot resume with different settings: {detail}{why}")
    if len(ckpt.get("rng", [])) != t.dist.world_size:
        raise DeepgenError(f"{where}: run used {len(ckpt.get('rng', []))} process(es), now {t.dist.world_size}")


def restore(t: Trainer, ckpt: dict) -> None:
    rank, device = t.dist.rank, t.dist.device
    t.model.load_state_dict(ckpt["model"])
    per_rank = ckpt.get("per_rank_buffers")
    if per_rank:
        buffers = dict(t.model.named_buffers())
        with torch.no_grad():
            for name, value in per_rank[rank].items():
                buffers[name].copy_(value)
    for name, opt in t.optimizers.items():
        opt.load_state_dict(ckpt["optimizers"][name])
    if t.ema is not None and ckpt.get("ema") is not None:
        t.ema.load_state_dict(ckpt["ema"])
    t.step = int(ckpt["step"])
    t.batches_drawn = int(ckpt.get("batches_drawn", t.step))
    t.elapsed = float(ckpt.get("elapsed", 0.0))
    if "elapsed" not in ckpt and t.config.time_limit and t.dist.is_main and not t.quiet:
        print(
            f"{t.checkpoint_path} predates time limits: its earlier training time is unknown, so the "
            "limit counts from now",
            file=sys.stderr,
        )
    torch.set_rng_state(ckpt["rng"][rank]["cpu"].cpu())
    cuda_state = ckpt["rng"][rank].get("cuda")
    if cuda_state is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda_state.cpu(), device)
    t.best = {**fresh_best(), **(ckpt.get("best") or {})}
    t.last_checkpoint_step = t.step
