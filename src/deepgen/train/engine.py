"""One training engine for every family.

:class:`Trainer` runs the loop (progress bar, metrics.jsonl, periodic evaluation, EMA, gradient
clipping, atomic checkpoints, exact resume, DDP); the model decides what one step is through
``model.train_step(x, y, ctx)``. The engine never subclasses or inspects models beyond the protocol
in :mod:`deepgen.models.base`, so GANs (several optimisers, several critic steps), EBMs (replay
buffers in registered buffers), diffusion (EMA sampling), flows (data-dependent init) and RBMs
(gradients without autograd, via :meth:`StepContext.apply_gradients`) all plug in unchanged.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from deepgen import __version__
from deepgen.config import CONFIG_VERSION, to_dict
from deepgen.data import Dataset, DataSpec
from deepgen.errors import DeepgenError
from deepgen.models.base import GenerativeModel
from deepgen.train import distributed as D
from deepgen.train.checkpoint import FORMAT, FORMAT_VERSION, load_checkpoint, save_atomic
from deepgen.train.config import RESUMABLE_CHANGES, TrainConfig
from deepgen.train.ema import EMA
from deepgen.train.sampler import EpochSampler

__all__ = ["Trainer", "StepContext", "TrainConfig", "TrainingDiverged"]


def _scalar(v) -> float:
    return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)


class TrainingDiverged(DeepgenError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 3


class StepContext:
    """What a model's ``train_step`` may use: optimisers, batches, and the one way to take a step.

    Attributes: ``global_step`` (0-based index of the current step), ``optimizers`` (dict by name),
    ``world_size``, ``rank``, ``device``.
    """

    def __init__(self, trainer: Trainer):
        self._t = trainer
        self.global_step = 0
        self.optimizers: dict[str, torch.optim.Optimizer] = trainer.optimizers
        self.world_size = trainer.dist.world_size
        self.rank = trainer.dist.rank
        self.device = trainer.dist.device
        self._synced_by_ddp = False
        self._params = {
            name: [p for g in opt.param_groups for p in g["params"]] for name, opt in self.optimizers.items()
        }

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, Any]:
        """``model.loss(x, y)``, through the DistributedDataParallel wrapper when there is one."""
        ddp = self._t.ddp
        self._synced_by_ddp = ddp is not None
        return (ddp or self._t.model)(x, y)

    def step(self, loss: torch.Tensor, name: str = "main") -> None:
        """Zero the grads of optimiser ``name``, backpropagate ``loss``, sync, clip, and step."""
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        self.apply_gradients(name)

    def apply_gradients(self, name: str = "main") -> None:
        """Sync (when distributed and not done by DDP), clip and apply the gradients now in ``.grad``.

        Models that compute gradients without autograd (contrastive divergence) set ``p.grad``
        themselves and call this.
        """
        params = self._params[name]
        if self.world_size > 1 and not self._synced_by_ddp:
            D.all_reduce_grads(params, self.world_size)
        if self._t.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, self._t.config.grad_clip, foreach=True)
        self.optimizers[name].step()

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A further training batch in this step (e.g. for several critic updates per step)."""
        return self._t._next_batch()


class Trainer:
    """Train ``model`` on ``data`` with ``config``, writing a run directory ``out``.

    >>> trainer = Trainer(model, load_dataset("moons"), TrainConfig(steps=1000), "runs/demo")
    >>> summary = trainer.fit()

    Run directory: ``config.json``, ``checkpoint.pt`` (atomic, latest), ``metrics.jsonl`` (one JSON
    object per logged step), and after training ``loss.png`` and sample/density plots.
    ``resume=True`` continues from ``out/checkpoint.pt`` when it exists (starting fresh otherwise).
    """

    def __init__(
        self,
        model: GenerativeModel,
        data: Dataset,
        config: TrainConfig,
        out: str | Path,
        *,
        data_spec: DataSpec | None = None,
        resume: bool = False,
        plots: bool = True,
        quiet: bool = False,
    ):
        self.model, self.data, self.config = model, data, config
        self.out = Path(out)
        self.data_spec = data_spec or DataSpec(data.info.name)
        self.resume, self.plots, self.quiet = resume, plots, quiet
        self.ddp = None
        self.ema: EMA | None = None
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.step = 0
        self.batches_drawn = 0
        self._stop_requested = False
        self.last_checkpoint_step: int | None = None

    # -- public ------------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train to ``config.steps``; returns a summary (final metrics, timings, paths)."""
        cfg = self.config
        self.dist = D.setup(cfg.device)
        try:
            return self._fit()
        finally:
            if self.ddp is not None:
                del self.ddp
                self.ddp = None
            D.teardown(self.dist)

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    # -- setup -------------------------------------------------------------------------------------
    def _fit(self) -> dict[str, Any]:
        cfg, dist, model = self.config, self.dist, self.model
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        elif dist.enabled and dist.device.type == "cpu":
            import os

            torch.set_num_threads(max(1, (os.cpu_count() or 1) // dist.world_size))
        model.to(dist.device)
        self.x = self.data.train.x.to(dist.device)
        self.y = None if self.data.train.y is None else self.data.train.y.to(dist.device)
        self.sampler = EpochSampler(len(self.x), cfg.batch_size, cfg.seed, dist.rank, dist.world_size)

        ckpt = None
        if self.resume and self.checkpoint_path.exists():
            ckpt = load_checkpoint(self.checkpoint_path, map_location=dist.device)
            self._check_resumable(ckpt)
        elif self.resume and dist.is_main and not self.quiet:
            print(f"no checkpoint in {self.out}; starting a fresh run", file=sys.stderr)

        torch.manual_seed(cfg.seed + 100_003 * dist.rank)
        if ckpt is None:
            x0, _ = self._peek_batch(0)
            if self.data.batch_transform is not None:
                x0 = self.data.batch_transform(x0)
            model.initialize(x0)
        self.optimizers = model.configure_optimizers(cfg)
        if cfg.ema_decay > 0:
            self.ema = EMA(model, cfg.ema_decay)
        if ckpt is not None:
            self._restore(ckpt)
        elif dist.enabled:
            D.broadcast_module(model)
            if self.ema is not None:
                self.ema = EMA(model, cfg.ema_decay)
        if dist.enabled and type(model).train_step is GenerativeModel.train_step:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(
                model,
                device_ids=[dist.device.index] if dist.device.type == "cuda" else None,
                broadcast_buffers=model.ddp_broadcast_buffers,
            )
        self.ctx = StepContext(self)
        if dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            self._write_config()
            self._open_metrics(truncate_after=self.step if ckpt is not None else 0)
        return self._loop()

    def _check_resumable(self, ckpt: dict) -> None:
        if ckpt["model_name"] != self.model.name:
            raise DeepgenError(f"{self.checkpoint_path}: run trained {ckpt['model_name']!r}, not {self.model.name!r}")
        if to_dict(self.model.config) != ckpt["model_config"]:
            raise DeepgenError(
                f"{self.checkpoint_path}: model options differ from the run's; resume with the run's options"
            )
        old = ckpt["train_config"]
        new = to_dict(self.config)
        diff = [k for k in new if k not in RESUMABLE_CHANGES and old.get(k) != new[k]]
        if diff:
            detail = ", ".join(f"{k} (run: {old.get(k)!r}, now: {new[k]!r})" for k in diff)
            raise DeepgenError(f"{self.checkpoint_path}: cannot resume with different settings: {detail}")
        if len(ckpt.get("rng", [])) != self.dist.world_size:
            raise DeepgenError(
                f"{self.checkpoint_path}: run used {len(ckpt.get('rng', []))} process(es), now {self.dist.world_size}"
            )

    def _restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][name])
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.load_state_dict(ckpt["ema"])
        self.step = int(ckpt["step"])
        self.batches_drawn = int(ckpt.get("batches_drawn", self.step))
        torch.set_rng_state(ckpt["rng"][self.dist.rank]["cpu"].cpu())
        cuda_state = ckpt["rng"][self.dist.rank].get("cuda")
        if cuda_state is not None and self.dist.device.type == "cuda":
            torch.cuda.set_rng_state(cuda_state.cpu(), self.dist.device)
        self.last_checkpoint_step = self.step

    # -- batches -----------------------------------------------------------------------------------
    def _peek_batch(self, k: int):
        idx = self.sampler.batch(k)
        x = self.x.index_select(0, idx)
        return x, (None if self.y is None else self.y.index_select(0, idx))

    def _next_batch(self):
        x, y = self._peek_batch(self.batches_drawn)
        self.batches_drawn += 1
        if self.data.batch_transform is not None:
            x = self.data.batch_transform(x)
        return x, (y if self.model.conditional else None)

    # -- the loop ----------------------------------------------------------------------------------
    def _loop(self) -> dict[str, Any]:
        cfg, dist, model = self.config, self.dist, self.model
        main = dist.is_main
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=not (cfg.progress and main) or self.quiet,
            desc=f"{model.name}",
            unit="step",
            mininterval=0.5,
            dynamic_ncols=True,
            file=sys.stderr,
        )
        sums: dict[str, float] = {}
        window_steps, window_t0 = 0, time.perf_counter()
        t_start = time.perf_counter()
        last: dict[str, Any] = {}
        ema = self.ema
        lr0 = {name: [g["lr"] for g in opt.param_groups] for name, opt in self.optimizers.items()}
        const_lr = cfg.lr_schedule == "constant" and not cfg.warmup_steps
        old_handler = self._install_sigint()
        model.train()
        try:
            while self.step < cfg.steps:
                s = self.step
                if not const_lr:
                    f = cfg.lr_factor(s)
                    for name, opt in self.optimizers.items():
                        for g, base in zip(opt.param_groups, lr0[name]):
                            g["lr"] = base * f
                self.ctx.global_step = s
                self.ctx._synced_by_ddp = False
                x, y = self._next_batch()
                out = model.train_step(x, y, self.ctx)
                loss = _scalar(out["loss"])
                if not math.isfinite(loss):
                    self._diverged(s, loss)
                if ema is not None:
                    ema.update()
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + _scalar(v)
                window_steps += 1
                self.step = s + 1
                bar.update(1)
                done = self.step == cfg.steps or self._stop_requested
                if (cfg.log_every and self.step % cfg.log_every == 0) or done:
                    dt = time.perf_counter() - window_t0
                    rec = {k: v / window_steps for k, v in sums.items()}
                    rec = D.mean_over_ranks(rec, dist)
                    rec["examples_per_s"] = window_steps * cfg.batch_size * dist.world_size / max(dt, 1e-9)
                    rec["lr"] = self.optimizers[next(iter(self.optimizers))].param_groups[0]["lr"]
                    last = rec
                    if main:
                        self._log(
                            {
                                "step": self.step,
                                "split": "train",
                                **rec,
                                "time": time.perf_counter() - t_start,
                            }
                        )
                        bar.set_postfix(loss=f"{rec['loss']:.4g}", ex_s=f"{rec['examples_per_s']:.0f}")
                    sums, window_steps, window_t0 = {}, 0, time.perf_counter()
                if (cfg.eval_every and self.step % cfg.eval_every == 0) or done:
                    if main:
                        ev = self.evaluate()
                        if ev:
                            self._log({"step": self.step, "split": "val", **ev})
                            last = {**last, **{f"val_{k}": v for k, v in ev.items()}}
                if (cfg.ckpt_every and self.step % cfg.ckpt_every == 0) or done:
                    self.save_checkpoint()
                if self._stop_requested:
                    if main:
                        print(
                            f"\ninterrupted: checkpoint at step {self.step} in {self.checkpoint_path}; "
                            "continue with --resume",
                            file=sys.stderr,
                        )
                    break
        finally:
            bar.close()
            self._restore_sigint(old_handler)
            if main and getattr(self, "_metrics_fh", None):
                self._metrics_fh.close()
        summary = {
            "run": str(self.out),
            "steps": self.step,
            "train_seconds": time.perf_counter() - t_start,
            "interrupted": self._stop_requested,
            **last,
        }
        if main and self.plots and not self._stop_requested:
            from deepgen.plots import write_run_plots

            with torch.random.fork_rng(devices=[]), self.eval_weights():
                summary["plots"] = write_run_plots(self.out, model, self.data)
        return summary

    def _diverged(self, step: int, loss: float) -> None:
        where = (
            f"the last good checkpoint (step {self.last_checkpoint_step}) is kept at {self.checkpoint_path}"
            if self.last_checkpoint_step is not None
            else "no checkpoint had been written yet"
        )
        raise TrainingDiverged(
            f"loss became {loss} at step {step + 1}; training stopped and {where}. "
            "Try a lower --lr or a --grad-clip value"
        )

    # -- evaluation --------------------------------------------------------------------------------
    def eval_weights(self):
        """Context manager: the EMA weights loaded into the model, when the run keeps an EMA."""
        import contextlib

        return self.ema.averaged() if self.ema is not None else contextlib.nullcontext()

    def evaluate(self, batch_size: int = 500) -> dict[str, float]:
        """Model-defined held-out metrics on up to ``eval_examples`` validation examples.

        Runs under a forked RNG, so evaluating (or not) never changes the training trajectory.
        """
        val = self.data.val.subset(self.config.eval_examples)
        if len(val) == 0:
            return {}
        model = self.model
        totals: dict[str, float] = {}
        with torch.random.fork_rng(devices=[]), self.eval_weights():
            model.eval()
            try:
                for i in range(0, len(val), batch_size):
                    xb = val.x[i : i + batch_size].to(self.dist.device)
                    yb = (
                        None
                        if val.y is None or not model.conditional
                        else val.y[i : i + batch_size].to(self.dist.device)
                    )
                    res = model.evaluate(xb, yb)
                    for k, v in res.items():
                        totals[k] = totals.get(k, 0.0) + float(v) * len(xb)
            finally:
                model.train()
        return {k: v / len(val) for k, v in totals.items()}

    # -- checkpoints -------------------------------------------------------------------------------
    def _rng_state(self) -> dict:
        state = {"cpu": torch.get_rng_state()}
        if self.dist.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.dist.device)
        return state

    def checkpoint_dict(self, rng_states: list) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config_version": CONFIG_VERSION,
            "deepgen_version": __version__,
            "model_name": self.model.name,
            "model_config": to_dict(self.model.config),
            "data_info": self.data.info.to_dict(),
            "data_spec": to_dict(self.data_spec),
            "train_config": to_dict(self.config),
            "step": self.step,
            "batches_drawn": self.batches_drawn,
            "model": self.model.state_dict(),
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "ema": None if self.ema is None else self.ema.state_dict(),
            "rng": rng_states,
        }

    def save_checkpoint(self) -> None:
        """Write ``checkpoint.pt`` atomically (all ranks' RNG states, rank 0 writes)."""
        states = D.all_gather_object(self._rng_state(), self.dist)
        if self.dist.is_main:
            states = [{k: v.cpu() for k, v in s.items()} for s in states]
            save_atomic(self.checkpoint_dict(states), self.checkpoint_path)
        self.last_checkpoint_step = self.step

    # -- files -------------------------------------------------------------------------------------
    def _write_config(self) -> None:
        cfg = {
            "deepgen_version": __version__,
            "config_version": CONFIG_VERSION,
            "model": self.model.name,
            "family": self.model.family,
            "model_config": to_dict(self.model.config),
            "data": to_dict(self.data_spec),
            "data_info": self.data.info.to_dict(),
            "train": to_dict(self.config),
            "world_size": self.dist.world_size,
            "parameters": self.model.num_parameters,
            "command": sys.argv,
        }
        tmp = self.out / "config.json"
        tmp.write_text(json.dumps(cfg, indent=2) + "\n")

    def _open_metrics(self, truncate_after: int) -> None:
        path = self.out / "metrics.jsonl"
        keep = []
        if truncate_after and path.exists():
            for line in path.read_text().splitlines():
                try:
                    if json.loads(line).get("step", 0) <= truncate_after:
                        keep.append(line)
                except json.JSONDecodeError:
                    continue
        path.write_text("".join(line + "\n" for line in keep))
        self._metrics_fh = open(path, "a", buffering=1)

    def _log(self, record: dict) -> None:
        self._metrics_fh.write(json.dumps(record) + "\n")

    def _install_sigint(self):
        if not hasattr(signal, "SIGINT"):
            return None
        import threading

        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True

        return signal.signal(signal.SIGINT, handler)

    def _restore_sigint(self, old) -> None:
        if old is not None:
            signal.signal(signal.SIGINT, old)
