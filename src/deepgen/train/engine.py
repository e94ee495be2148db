"""One training engine for every family: the loop.

:class:`Trainer` runs the loop (progress bar, metrics.jsonl, periodic evaluation, EMA, gradient
clipping and accumulation, bf16 autocast, atomic checkpoints, exact resume, DDP, callbacks); the
model decides what one step is through ``model.train_step(x, y, ctx)`` (see
:class:`~deepgen.train.step.StepContext`). The engine never subclasses or inspects models beyond
the protocol in :mod:`deepgen.models.base`, so GANs (several optimisers, several critic steps),
EBMs (replay buffers in registered buffers), diffusion (EMA sampling), flows (data-dependent init)
and RBMs (gradients without autograd) all plug in unchanged. A model whose steps are tiny may also
take several in one call, ``model.train_steps(xs, ys, ctx)`` (``--steps-per-call``; the RBM's fused
contrastive divergence), between the steps that log, evaluate or checkpoint.

The pieces around the loop live beside it: batches (:mod:`.batches`), checkpoint contents and
restore (:mod:`.state`), held-out evaluation (:mod:`.evaluation`), per-step bookkeeping without GPU
syncs (:mod:`.monitor`), device specifics (:mod:`.accel`) and presentation (:mod:`.callbacks`,
supplied by the caller: the engine imports no plotting).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from deepgen.data import Dataset, DataSpec
from deepgen.errors import ConfigError, DeepgenError
from deepgen.models.base import GenerativeModel
from deepgen.train import accel
from deepgen.train import distributed as D
from deepgen.train import state as S
from deepgen.train.batches import BatchSource, passes_y
from deepgen.train.callbacks import Callback, PlotCallback
from deepgen.train.checkpoint import load_checkpoint
from deepgen.train.config import TrainConfig
from deepgen.train.ema import EMA
from deepgen.train.evaluation import evaluate
from deepgen.train.monitor import DivergenceGuard, MetricWindow, host_sync_is_free
from deepgen.train.rundir import MetricsLog, write_config
from deepgen.train.state import fresh_best
from deepgen.train.step import StepContext

__all__ = ["Trainer", "StepContext", "TrainConfig", "TrainingDiverged"]


def clock() -> float:
    """The clock of ``time_limit`` (seconds; tests replace it with a scripted one)."""
    return time.perf_counter()


#: Under DDP, how often (in steps) the ranks agree on whether a Ctrl-C / SIGTERM asked them to stop.
STOP_SYNC_EVERY = 10


class TrainingDiverged(DeepgenError):
    """The loss (or the parameters) became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 3


class Trainer:
    """Train ``model`` on ``data`` with ``config``, writing a run directory ``out``.

    >>> from deepgen.data import load_dataset
    >>> from deepgen.train.run import build_model
    >>> data = load_dataset("moons")
    >>> model = build_model("vae", data.info, seed=0)
    >>> config = TrainConfig(steps=5, eval_every=0, progress=False)  # a real run: thousands of steps
    >>> trainer = Trainer(model, data, config, "runs/demo", plots=False, quiet=True)
    >>> summary = trainer.fit()
    >>> summary["steps"], sorted(p.name for p in trainer.out.iterdir())
    (5, ['checkpoint.pt', 'config.json', 'metrics.jsonl'])

    Run directory: ``config.json``, ``checkpoint.pt`` (atomic, latest), ``metrics.jsonl`` (one JSON
    object per logged step), ``best.pt`` with ``keep_best`` or ``patience`` (the checkpoint of the
    lowest validation NLL; ``patience`` also stops early), plus whatever the ``callbacks`` write (see
    :mod:`deepgen.train.callbacks`). ``plots`` is a shorthand: None (default) adds the end-of-run
    :class:`~deepgen.train.callbacks.PlotCallback` (``loss.png``, ``samples.png``) when no
    ``callbacks`` are given, True always adds it, False never.
    ``resume=True`` continues from ``out/checkpoint.pt`` when it exists (starting fresh otherwise);
    a fresh run refuses a folder that already holds a checkpoint unless ``overwrite=True``.
    ``init_from="RUN[:SRC[=DST]]"`` starts a fresh run with part of its weights copied from a
    trained run (:func:`deepgen.train.run.init_from`); it is refused when resuming an existing run.
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
        callbacks: Sequence[Callback] = (),
        plots: bool | None = None,
        init_from: str | None = None,
        quiet: bool = False,
    ):
        self.model, self.data, self.config = model, data, config
        self.out = Path(out)
        self.data_spec = data_spec or DataSpec(data.info.name)
        self.resume, self.overwrite, self.quiet = resume, overwrite, quiet
        self.callbacks = list(callbacks)
        if plots or (plots is None and not self.callbacks):
            self.callbacks.append(PlotCallback())
        self.init_from = init_from
        self.init_source: dict | None = None  # provenance of init_from, kept in config.json and checkpoints
        self.ddp = None
        self.ema: EMA | None = None
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.step = 0
        self.batches_drawn = 0
        self._stop_requested = False
        self.best = fresh_best()  # the lowest validation NLL so far (keep_best / patience)
        self.stopped_early = False
        self.elapsed = 0.0  # wall-clock seconds of the training loop, over every resume (time_limit)
        self.time_limit_reached = False
        self.last_checkpoint_step: int | None = None
        self._log: MetricsLog | None = None
        self._host_sync: bool | None = None  # None: by device (monitor.host_sync_is_free); tests force it
        self._compile_unproven = False

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    @property
    def best_path(self) -> Path:
        """``best.pt``: the checkpoint of the lowest validation NLL (``keep_best`` / ``patience``)."""
        return self.out / "best.pt"

    # -- public ------------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train to ``config.steps``, or until the time limit, early stopping (``patience``) or an
        interrupt ends the run; returns a summary (final metrics, timings, paths)."""
        exists = self.checkpoint_path.exists()
        if not self.resume and not self.overwrite and exists:
            raise DeepgenError(
                f"{self.out} already holds a run; pass --resume to continue it, --overwrite to replace it, "
                "or choose another --out"
            )
        if self.init_from and self.resume and exists:
            raise DeepgenError(
                f"--init-from starts a fresh run, but {self.out} holds a run to resume (its checkpoint "
                "already holds the weights); drop --init-from, or train into another --out"
            )
        self.dist = D.setup(self.config.device)
        failed = True
        try:
            summary = self._fit()
            failed = False
            return summary
        finally:
            # drop every reference to the DDP wrapper (forward_module holds one too) before the process
            # group goes: a reducer that outlives destroy_process_group aborts the rank at exit
            self.ddp = None
            self.forward_module = self.model
            if self.dist.enabled:  # a full collection costs 0.2-0.5 s in a busy process: only when it matters
                gc.collect()
            D.teardown(self.dist, barrier=not failed)

    def eval_weights(self):
        """Context manager: the EMA weights loaded into the model, when the run keeps an EMA."""
        return self.ema.averaged() if self.ema is not None else contextlib.nullcontext()

    def evaluate(self, batch_size: int = 500) -> dict[str, float]:
        """Model-defined held-out metrics (see :mod:`deepgen.train.evaluation`)."""
        return evaluate(self, batch_size)

    def save_checkpoint(self) -> None:
        """Write ``checkpoint.pt`` atomically (see :func:`deepgen.train.state.save_checkpoint`)."""
        S.save_checkpoint(self)

    def checkpoint_dict(self, rng_states: list, per_rank: list | None = None) -> dict:
        return S.checkpoint_dict(self, rng_states, per_rank)

    # -- setup -------------------------------------------------------------------------------------
    def _auto_threads(self) -> None:
        """Without ``--threads``: all cores on an idle machine, one thread when others keep it busy
        (at least cores - 0.5 other runnable processes when training starts).

        Measured on 2 cores (docs/benchmarks.md, benchmarks/threads.py): alone, 2 threads train as
        fast as 1 or up to 1.65x faster; beside another 2-thread job, 2 threads oversubscribe the
        cores and run up to 10x slower than 1.
        """
        from deepgen.metrics.cost import load_average, other_runnable

        # Processes runnable right now, not the 1-minute load average, which still counts this
        # process's (or the previous command's) own work of the last minute.
        cores, others = os.cpu_count() or 1, other_runnable()
        if others is None:
            load = load_average()
            others = None if load is None else load
        if cores > 1 and others is not None and others >= cores - 0.5:
            torch.set_num_threads(1)
            if self.dist.is_main and not self.quiet:
                print(
                    f"deepgen: the machine is busy ({others:g} other runnable processes on {cores} cores): "
                    "training with 1 thread (--threads N to choose)",
                    file=sys.stderr,
                )

    def _check_applicable(self) -> bool:
        """Refuse options this model or device cannot use; returns whether train_step is the default."""
        cfg, model = self.config, self.model
        accel.check_precision(cfg.precision, self.dist.device)
        slow = accel.precision_warning(cfg.precision, self.dist.device)
        if slow and self.dist.is_main and not self.quiet:
            print(f"deepgen: {slow}", file=sys.stderr)
        default_step = type(model).train_step is GenerativeModel.train_step
        if not default_step and cfg.grad_accum > 1:
            raise ConfigError(
                f"--grad-accum: {model.name} has its own train_step (several optimisers or hand-written "
                "gradients), which cannot be split into micro-batches; use a larger --batch-size instead"
            )
        if not default_step and cfg.compile:
            raise ConfigError(
                f"--compile applies to models trained through loss() (the default train_step); "
                f"{model.name} has its own train_step"
            )
        if cfg.tracks_best and len(self.data.val) == 0:
            what = "--patience" if cfg.patience else "--keep-best"
            raise ConfigError(
                f"{what} watches the validation NLL, but the data has no validation examples "
                "(val_fraction 0?); give it some, or train without it"
            )
        if cfg.steps_per_call > 1:
            if type(model).train_steps is GenerativeModel.train_steps:
                raise ConfigError(
                    f"--steps-per-call: {model.name} takes one step per call; only models with a fused "
                    "multi-step update (rbm) accept it"
                )
        return default_step

    def _fit(self) -> dict[str, Any]:
        cfg, dist, model = self.config, self.dist, self.model
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        elif dist.enabled and dist.device.type == "cpu":
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // dist.world_size))
        elif dist.device.type == "cpu":
            self._auto_threads()
        default_step = self._check_applicable()
        per_rank = S.per_rank_buffer_names(model)
        model.to(dist.device)
        self.batches = BatchSource(self.data, cfg.batch_size, cfg.seed, dist.rank, dist.world_size, dist.device)

        ckpt = None
        if self.resume and self.checkpoint_path.exists():
            ckpt = load_checkpoint(self.checkpoint_path, map_location=dist.device)
            S.check_resumable(self, ckpt)
            self.init_source = ckpt.get("init_from")
        elif self.resume and dist.is_main and not self.quiet:
            print(f"no checkpoint in {self.out}; starting a fresh run", file=sys.stderr)
        if ckpt is None and self.init_from:
            from deepgen.train.run import init_from

            with accel.fork_rng(dist.device):  # building the source model must not shift the seeds
                self.init_source = init_from(model, self.init_from)

        torch.manual_seed(cfg.seed + 100_003 * dist.rank)
        if ckpt is None:  # data-dependent init after init_from, so it sees the trained part
            x0, _ = self.batches.peek(0)
            if self.data.batch_transform is not None:
                x0 = self.data.batch_transform(x0)
            model.initialize(x0)
            if self.init_from:  # a data-dependent initialize() may have re-set the copied part: copy it back
                from deepgen.train.run import init_from

                with accel.fork_rng(dist.device):
                    init_from(model, self.init_from)
        self.optimizers = model.configure_optimizers(cfg)
        for opt in self.optimizers.values():  # the schedule scales these, never the restored rates
            for g in opt.param_groups:
                g.setdefault("initial_lr", g["lr"])
        if cfg.ema_decay > 0:
            self.ema = EMA(model, cfg.ema_decay)
        if ckpt is not None:
            S.restore(self, ckpt)
            if dist.is_main and not self.quiet:
                print(f"resumed from step {self.step}", file=sys.stderr)
        elif dist.enabled:
            D.broadcast_module(model, skip=per_rank)
            if self.ema is not None:
                self.ema = EMA(model, cfg.ema_decay)
        if dist.is_main:
            S.check_best_file(self, resumed=ckpt is not None)
            if ckpt is None and self.checkpoint_path.exists():  # --overwrite: the old run's weights go now,
                self.checkpoint_path.unlink()  # not at the first new checkpoint (a resume would find them)
        if dist.enabled and default_step:
            self.ddp = D.wrap_ddp(model, dist, ignore=per_rank)
        self.forward_module = self.ddp or model
        if cfg.compile:
            self.forward_module = accel.compile_forward(self.forward_module)
            self._compile_unproven = True
        self.ctx = StepContext(self)
        if dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_config(self.out, model, self.data_spec, self.data.info, cfg, dist.world_size, self.init_source)
            self._log = MetricsLog(self.out / "metrics.jsonl", keep_until_step=self.step if ckpt is not None else 0)
        self._callback("on_start")
        return self._loop()

    # -- batches -----------------------------------------------------------------------------------
    def _next_batch(self):
        x, y = self.batches.peek(self.batches_drawn)
        self.batches_drawn += 1
        if self.data.batch_transform is not None:
            x = self.data.batch_transform(x)
        if getattr(self.data.info, "kind", "examples") == "domains":  # an independent batch of domain B
            return x, self.data.draw_b(len(x)).to(x.device)
        return x, (y if passes_y(self.data.info, self.model) else None)

    def _next_batches(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next ``n`` batches stacked, ``(x (n, B, *shape), y (n, B) or None)``, for a fused call:
        one gather when the data has no per-batch transform, else ``n`` draws of :meth:`_next_batch`."""
        kind = getattr(self.data.info, "kind", "examples")
        if self.data.batch_transform is None and kind != "domains":
            x, y = self.batches.peek_many(self.batches_drawn, n)
            self.batches_drawn += n
            return x, (y if passes_y(self.data.info, self.model) else None)
        xs, ys = zip(*(self._next_batch() for _ in range(n)))
        return torch.stack(xs), (None if ys[0] is None else torch.stack(ys))

    # -- one optimisation step ---------------------------------------------------------------------
    def _train_step(self, x, y, last: bool) -> dict[str, Any]:
        """``model.train_step`` for one (micro-)batch, in autocast and ``no_sync`` where they apply."""
        cfg = self.config
        with contextlib.ExitStack() as stack:
            if not last and self.ddp is not None:  # all-reduce once, at the last micro-batch
                stack.enter_context(self.ddp.no_sync())
            if cfg.precision != "fp32":
                stack.enter_context(accel.autocast(cfg.precision, self.dist.device))
            if not self._compile_unproven:
                return self.model.train_step(x, y, self.ctx)
            try:  # compilation happens in the first forward and backward
                out = self.model.train_step(x, y, self.ctx)
            except Exception as e:
                err = accel.compile_failure(e)
                if err is not None:
                    raise err from None
                raise
            self._compile_unproven = False
            return out

    # -- the loop ----------------------------------------------------------------------------------
    def _loop(self) -> dict[str, Any]:
        cfg, dist, model, ema, ctx = self.config, self.dist, self.model, self.ema, self.ctx
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
        sync = host_sync_is_free(dist.device) if self._host_sync is None else self._host_sync
        guard, window = DivergenceGuard(dist, sync), MetricWindow(sync)
        periodic = [cb for cb in self.callbacks if getattr(cb, "every", 0)] if main else []
        accum = cfg.grad_accum
        window_batches, window_t0 = self.batches_drawn, time.perf_counter()
        train_time, last = 0.0, {}
        const_lr = cfg.lr_schedule == "constant" and not cfg.warmup_steps
        fused, everies = self._fused_call_size(), self._event_periods()
        loop_t0, elapsed0 = clock(), self.elapsed
        # the time the schedule and the time limit read: this rank's clock, or under DDP the ranks'
        # latest clock agreed every STOP_SYNC_EVERY steps (each rank must step with the same lr)
        agreed = self.elapsed
        old_handler = self._install_sigint()
        # a resumed run whose time is used up, or that stopped early, takes no more steps
        self.time_limit_reached = bool(cfg.time_limit) and self.elapsed >= cfg.time_limit
        self.stopped_early = bool(cfg.patience) and self.best["stale"] >= cfg.patience
        if main and not self.quiet and self.step < cfg.steps:
            if self.stopped_early:
                print(f"the run stopped early at step {self.step}; nothing to train", file=sys.stderr)
            elif self.time_limit_reached:
                print(
                    f"the run used its time limit ({self.elapsed:.1f} of {cfg.time_limit:g} s) at step "
                    f"{self.step}; nothing to train (a constant --lr-schedule may resume with a longer --time-limit)",
                    file=sys.stderr,
                )
        start_step = self.step
        model.train()
        try:
            while self.step < cfg.steps and not self.time_limit_reached and not self.stopped_early:
                s = self.step
                # steps in this call: 1, or with a fused model up to the next step that logs, evaluates,
                # checkpoints or runs a callback (so those see the same steps as one step per call)
                n = min([fused, cfg.steps - s] + [e - s % e for e in everies]) if fused > 1 else 1
                if not const_lr:
                    self._set_lr(cfg.lr_factor(s, agreed))
                ctx.global_step = s
                if n > 1:
                    xs, ys = self._next_batches(n)
                    ctx.lr_factors = None if const_lr else [cfg.lr_factor(s + i, agreed) for i in range(n)]
                    out = model.train_steps(xs, ys, ctx)
                    ctx.lr_factors = None
                    if not const_lr:
                        self._set_lr(cfg.lr_factor(s + n - 1, agreed))
                    bad = guard.push(s + n - 1, out["loss"])  # a NaN carries into the last step's loss
                    if bad:
                        self._diverged(bad[0], "loss", bad[1])
                    window.add(out)
                for i in range(accum if n == 1 else 0):
                    ctx.micro_batch = i
                    ctx._synced_by_ddp = False
                    x, y = self._next_batch()
                    out = self._train_step(x, y, i == accum - 1)
                    bad = guard.push(s, out["loss"])
                    if bad:
                        self._diverged(bad[0], "loss", bad[1])
                    window.add(out)
                if ema is not None:
                    ema.update()
                self.step = s + n
                bar.update(n)
                stop = self._stop_requested
                self.elapsed = elapsed0 + clock() - loop_t0
                if self.dist.enabled:
                    # A signal may reach the ranks a step apart: they must stop at the same step, or the
                    # others hang in a collective. Agreeing costs a host sync, so it happens every
                    # STOP_SYNC_EVERY steps (a stopping rank trains on to that step), not every step.
                    stop = False
                    if self.step % STOP_SYNC_EVERY == 0:
                        stop = self._stop_requested = D.any_rank(self._stop_requested, self.dist)
                        if cfg.time_limit:  # every rank's clock moves on to the latest one
                            agreed = D.max_over_ranks(self.elapsed, self.dist)
                            elapsed0 += agreed - self.elapsed
                            self.elapsed = agreed
                else:
                    agreed = self.elapsed
                self.time_limit_reached = bool(cfg.time_limit) and agreed >= cfg.time_limit
                done = self.step == cfg.steps or stop or self.time_limit_reached
                log_now = (cfg.log_every and self.step % cfg.log_every == 0) or done
                eval_now = (cfg.eval_every and self.step % cfg.eval_every == 0) or done
                ckpt_now = (cfg.ckpt_every and self.step % cfg.ckpt_every == 0) or done
                show = [cb for cb in periodic if self.step % cb.every == 0]
                if not (log_now or eval_now or ckpt_now or show):
                    continue
                bad = guard.flush()  # a lagged check resolves before anything is logged or saved
                if bad:
                    self._diverged(bad[0], "loss", bad[1])
                for again in (False, True):
                    if again:
                        # The step's evaluation or checkpoint used up the time limit: this step is the
                        # last, with its evaluation and checkpoint (once each). Under DDP the ranks'
                        # clocks are compared every STOP_SYNC_EVERY steps instead.
                        if done or self.stopped_early or not cfg.time_limit or dist.enabled:
                            break
                        self.elapsed = agreed = elapsed0 + clock() - loop_t0
                        if self.elapsed < cfg.time_limit:
                            break
                        self.time_limit_reached = done = True
                        log_now, eval_now, ckpt_now, show = False, not eval_now, True, []
                    if log_now:
                        rec = D.mean_over_ranks(window.means(), dist)  # the one device sync per window
                        dt = time.perf_counter() - window_t0
                        train_time += dt
                        examples = (self.batches_drawn - window_batches) * cfg.batch_size * dist.world_size
                        rec["examples_per_s"] = examples / max(dt, 1e-9)
                        rec["lr"] = next(iter(self.optimizers.values())).param_groups[0]["lr"]
                        last = rec
                        if main:
                            wall = {"wall": self.elapsed} if cfg.time_limit else {}
                            self._log.write({"step": self.step, "split": "train", **rec, "time": train_time, **wall})
                            bar.set_postfix(loss=f"{rec['loss']:.4g}", ex_s=f"{rec['examples_per_s']:.0f}")
                            self._callback("on_log", self.step, rec)
                        window_batches = self.batches_drawn
                    if eval_now and main:
                        ev = self.evaluate()
                        if ev:
                            self._log.write({"step": self.step, "split": "val", **ev})
                            last = {**last, **{f"val_{k}": v for k, v in ev.items()}}
                            self._callback("on_eval", self.step, ev)
                        if cfg.tracks_best and not stop:  # an interrupt's evaluation: resume repeats it
                            S.track_best(self, ev)
                    if eval_now and cfg.patience:
                        early = self.best["stale"] >= cfg.patience if main else False
                        self.stopped_early = D.any_rank(early, dist) if dist.enabled else early
                    if ckpt_now or self.stopped_early:
                        self.elapsed = elapsed0 + clock() - loop_t0  # the evaluation's time too
                        self.save_checkpoint()
                    for cb in show:
                        self._run_callback(cb, "on_step", self.step)
                    window_t0 = time.perf_counter()  # evaluation, checkpoints and callbacks are not training time
                if self.stopped_early:
                    if main and not self.quiet:
                        b = self.best
                        print(
                            f"\nstopped early at step {self.step}: the validation NLL has not improved for "
                            f"{cfg.patience} evaluation{'s' * (cfg.patience > 1)} (best {b['nll']:.4f} "
                            f"at step {b['step']}, in {self.best_path})",
                            file=sys.stderr,
                        )
                    break
                if self.time_limit_reached and not stop:
                    if main and not self.quiet:
                        print(
                            f"\ntime limit reached at step {self.step} ({self.elapsed:.1f} s of training, limit "
                            f"{cfg.time_limit:g} s)",
                            file=sys.stderr,
                        )
                    break
                if stop:
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
            "start_step": start_step,  # where this call began (> 0 when resumed)
            "train_seconds": train_time,  # this call's training windows (evaluations not counted)
            "interrupted": self._stop_requested,
            **last,
        }
        if cfg.time_limit:
            summary.update(elapsed=self.elapsed, time_limit=cfg.time_limit, time_limit_reached=self.time_limit_reached)
        if cfg.tracks_best:
            summary.update(best_step=self.best["step"], best_val_nll=self.best["nll"], stopped_early=self.stopped_early)
        if ema is not None:  # leave the model holding the weights evaluation and sampling use
            ema.copy_to_model()
        model.eval()
        if not self._stop_requested:
            paths = {}
            for result in self._callback("on_end", summary):
                paths.update(result or {})
            if paths:
                summary["plots"] = paths
        return summary

    def _set_lr(self, factor: float) -> None:
        for opt in self.optimizers.values():
            for g in opt.param_groups:
                g["lr"] = g["initial_lr"] * factor

    def _fused_call_size(self) -> int:
        """``steps_per_call`` when the model can fuse steps in this configuration, else 1 (said once)."""
        n = self.config.steps_per_call
        if n <= 1:
            return 1
        why = self.model.fused_steps_unavailable(self.ctx)
        if why is None and self.ema is not None:
            why = "an EMA of the weights is updated after every step"
        if why is None:
            return n
        if self.dist.is_main and not self.quiet:
            print(f"{self.model.name}: one step per call ({why})", file=sys.stderr)
        return 1

    def _event_periods(self) -> list[int]:
        """The periods (in steps) of everything the loop does between steps; a fused call never crosses one."""
        cfg = self.config
        periods = [cfg.log_every, cfg.eval_every, cfg.ckpt_every] + [getattr(cb, "every", 0) for cb in self.callbacks]
        if self.dist.enabled:
            periods.append(STOP_SYNC_EVERY)
        return [p for p in periods if p]

    # -- callbacks ---------------------------------------------------------------------------------
    def _callback(self, hook: str, *args) -> list:
        """Run ``hook`` of every callback (rank 0 only); returns their results."""
        if not self.dist.is_main:
            return []
        return [self._run_callback(cb, hook, *args) for cb in self.callbacks if hasattr(cb, hook)]

    def _run_callback(self, cb, hook: str, *args):
        """One callback hook under a forked RNG, with the model's train/eval mode restored after."""
        was_training = self.model.training
        try:
            with accel.fork_rng(self.dist.device):  # not no_grad: Langevin samplers need autograd
                return getattr(cb, hook)(self, *args)
        finally:
            self.model.train(was_training)

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
