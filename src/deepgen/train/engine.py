"""One training engine for every family.

:class:`Trainer` runs the loop (progress bar, metrics.jsonl, periodic evaluation, EMA, gradient
clipping, atomic checkpoints, exact resume, DDP); the model decides what one step is through
``model.train_step(x, y, ctx)`` (see :class:`~deepgen.train.step.StepContext`). The engine never
subclasses or inspects models beyond the protocol in :mod:`deepgen.models.base`, so GANs (several
optimisers, several critic steps), EBMs (replay buffers in registered buffers), diffusion (EMA
sampling), flows (data-dependent init) and RBMs (gradients without autograd) all plug in unchanged.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
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
from deepgen.train.rundir import MetricsLog, write_config
from deepgen.train.sampler import EpochSampler
from deepgen.train.step import StepContext

__all__ = ["Trainer", "StepContext", "TrainConfig", "TrainingDiverged"]


def _scalar(v) -> float:
    return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)


class TrainingDiverged(DeepgenError):
    """The loss (or the parameters) became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 3


class Trainer:
    """Train ``model`` on ``data`` with ``config``, writing a run directory ``out``.

    >>> trainer = Trainer(model, load_dataset("moons"), TrainConfig(steps=1000), "runs/demo")
    >>> summary = trainer.fit()

    Run directory: ``config.json``, ``checkpoint.pt`` (atomic, latest), ``metrics.jsonl`` (one JSON
    object per logged step), and after training ``loss.png`` and sample/density plots.
    ``resume=True`` continues from ``out/checkpoint.pt`` when it exists (starting fresh otherwise);
    a fresh run refuses a folder that already holds a checkpoint unless ``overwrite=True``.
    After :meth:`fit` the model is in eval mode and holds the weights evaluation uses (the EMA when
    one is kept; the raw weights stay in the checkpoint).
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
        overwrite: bool = False,
        plots: bool = True,
        quiet: bool = False,
    ):
        self.model, self.data, self.config = model, data, config
        self.out = Path(out)
        self.data_spec = data_spec or DataSpec(data.info.name)
        self.resume, self.overwrite, self.plots, self.quiet = resume, overwrite, plots, quiet
        self.ddp = None
        self.ema: EMA | None = None
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.step = 0
        self.batches_drawn = 0
        self._stop_requested = False
        self.last_checkpoint_step: int | None = None
        self._log: MetricsLog | None = None

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    # -- public ------------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train to ``config.steps``; returns a summary (final metrics, timings, paths)."""
        if not self.resume and not self.overwrite and self.checkpoint_path.exists():
            raise DeepgenError(
                f"{self.out} already holds a run; pass --resume to continue it, --overwrite to replace it, "
                "or choose another --out"
            )
        self.dist = D.setup(self.config.device)
        try:
            return self._fit()
        finally:
            if self.ddp is not None:
                del self.ddp
                self.ddp = None
            D.teardown(self.dist)

    def eval_weights(self):
        """Context manager: the EMA weights loaded into the model, when the run keeps an EMA."""
        return self.ema.averaged() if self.ema is not None else contextlib.nullcontext()

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
        self.sampler = EpochSampler.for_run(len(self.x), cfg.batch_size, cfg.seed, dist.rank, dist.world_size)

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
        for opt in self.optimizers.values():  # the schedule scales these, never the restored rates
            for g in opt.param_groups:
                g.setdefault("initial_lr", g["lr"])
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
            write_config(self.out, model, self.data_spec, self.data.info, cfg, dist.world_size)
            self._log = MetricsLog(self.out / "metrics.jsonl", keep_until_step=self.step if ckpt is not None else 0)
        return self._loop()

    def _check_resumable(self, ckpt: dict) -> None:
        where = self.checkpoint_path
        if ckpt["model_name"] != self.model.name:
            raise DeepgenError(f"{where}: run trained {ckpt['model_name']!r}, not {self.model.name!r}")
        if to_dict(self.model.config) != ckpt["model_config"]:
            raise DeepgenError(f"{where}: model options differ from the run's; resume with the run's options")
        if ckpt["data_info"] != self.data.info.to_dict():
            raise DeepgenError(
                f"{where}: run was trained on {ckpt['data_info']['name']} {tuple(ckpt['data_info']['shape'])}, "
                f"not {self.data.info.describe()}; resume with the run's data"
            )
        old, new = ckpt["train_config"], to_dict(self.config)
        allowed = set(RESUMABLE_CHANGES)
        if new.get("lr_schedule") != "constant":
            allowed.discard("steps")  # the schedule's shape depends on the total number of steps
        diff = [k for k in new if k not in allowed and old.get(k) != new[k]]
        if diff:
            detail = ", ".join(f"{k} (run: {old.get(k)!r}, now: {new[k]!r})" for k in diff)
            raise DeepgenError(f"{where}: cannot resume with different settings: {detail}")
        if len(ckpt.get("rng", [])) != self.dist.world_size:
            raise DeepgenError(f"{where}: run used {len(ckpt.get('rng', []))} process(es), now {self.dist.world_size}")

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
        cfg, dist, model, ema = self.config, self.dist, self.model, self.ema
        main = dist.is_main
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=not (cfg.progress and main) or self.quiet,
            desc=model.name,
            unit="step",
            mininterval=0.5,
            dynamic_ncols=True,
            file=sys.stderr,
        )
        sums: dict[str, float] = {}
        window_steps, window_batches, window_t0 = 0, self.batches_drawn, time.perf_counter()
        train_time, last = 0.0, {}
        const_lr = cfg.lr_schedule == "constant" and not cfg.warmup_steps
        old_handler = self._install_sigint()
        model.train()
        try:
            while self.step < cfg.steps:
                s = self.step
                if not const_lr:
                    f = cfg.lr_factor(s)
                    for opt in self.optimizers.values():
                        for g in opt.param_groups:
                            g["lr"] = g["initial_lr"] * f
                self.ctx.global_step = s
                self.ctx._synced_by_ddp = False
                x, y = self._next_batch()
                out = model.train_step(x, y, self.ctx)
                loss = _scalar(out["loss"])
                bad = not math.isfinite(loss)
                if dist.enabled:  # every rank must stop together, or the others hang in a collective
                    bad = D.any_rank(bad, dist)
                if bad:
                    self._diverged(s, "loss", loss if not math.isfinite(loss) else "non-finite on another rank")
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
                    train_time += dt
                    rec = D.mean_over_ranks({k: v / window_steps for k, v in sums.items()}, dist)
                    examples = (self.batches_drawn - window_batches) * cfg.batch_size * dist.world_size
                    rec["examples_per_s"] = examples / max(dt, 1e-9)
                    rec["lr"] = next(iter(self.optimizers.values())).param_groups[0]["lr"]
                    last = rec
                    if main:
                        self._log.write({"step": self.step, "split": "train", **rec, "time": train_time})
                        bar.set_postfix(loss=f"{rec['loss']:.4g}", ex_s=f"{rec['examples_per_s']:.0f}")
                    sums, window_steps = {}, 0
                    window_batches, window_t0 = self.batches_drawn, time.perf_counter()
                if (cfg.eval_every and self.step % cfg.eval_every == 0) or done:
                    if main:
                        ev = self.evaluate()
                        if ev:
                            self._log.write({"step": self.step, "split": "val", **ev})
                            last = {**last, **{f"val_{k}": v for k, v in ev.items()}}
                    window_t0 = time.perf_counter()  # evaluation is not training time
                if (cfg.ckpt_every and self.step % cfg.ckpt_every == 0) or done:
                    self.save_checkpoint()
                    window_t0 = time.perf_counter()
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
            if self._log is not None:
                self._log.close()
        summary = {
            "run": str(self.out),
            "steps": self.step,
            "train_seconds": train_time,
            "interrupted": self._stop_requested,
            **last,
        }
        if ema is not None:  # leave the model holding the weights evaluation and sampling use
            ema.copy_to_model()
        model.eval()
        if main and self.plots and not self._stop_requested:
            from deepgen.plots import write_run_plots

            with torch.random.fork_rng(devices=[]):
                summary["plots"] = write_run_plots(self.out, model, self.data)
        return summary

    def _diverged(self, step: int, what: str, value) -> None:
        where = (
            f"the last good checkpoint (step {self.last_checkpoint_step}) is kept at {self.checkpoint_path}"
            if self.last_checkpoint_step is not None
            else "no checkpoint had been written yet"
        )
        raise TrainingDiverged(
            f"{what} became {value} at step {step + 1}; training stopped and {where}. "
            "Try a lower --lr or a --grad-clip value"
        )

    # -- evaluation --------------------------------------------------------------------------------
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
                    yb = None
                    if val.y is not None and model.conditional:
                        yb = val.y[i : i + batch_size].to(self.dist.device)
                    for k, v in model.evaluate(xb, yb).items():
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
        """Write ``checkpoint.pt`` atomically (all ranks' RNG states, rank 0 writes).

        Parameters are checked first: a finite loss with an infinite gradient can leave NaN weights,
        and such a state must never replace the last good checkpoint.
        """
        bad = [n for n, p in self.model.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            self._diverged(self.step - 1, f"parameter {bad[0]!r}", "non-finite")
        states = D.all_gather_object(self._rng_state(), self.dist)
        if self.dist.is_main:
            states = [{k: v.cpu() for k, v in s.items()} for s in states]
            save_atomic(self.checkpoint_dict(states), self.checkpoint_path)
        self.last_checkpoint_step = self.step

    # -- Ctrl-C: finish the step, checkpoint, stop -------------------------------------------------
    def _install_sigint(self):
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
