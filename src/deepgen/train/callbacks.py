"""Callbacks: what a run shows (plots, sample grids, banners) is supplied by the caller, not the engine.

The engine knows nothing about plots or presentation; the CLI and ``compare`` pass callbacks:

>>> from deepgen.data import load_dataset
>>> from deepgen.train.callbacks import run_plots_callbacks
>>> from deepgen.train.engine import Trainer, TrainConfig
>>> from deepgen.train.run import build_model
>>> data = load_dataset("moons")
>>> model = build_model("gmm", data.info, seed=0)
>>> cfg = TrainConfig(steps=2, eval_every=0, progress=False)
>>> summary = Trainer(model, data, cfg, "runs/x", callbacks=run_plots_callbacks(sample_every=500), quiet=True).fit()
>>> sorted(summary["plots"])  # what PlotCallback.on_end wrote (no sample grid: 2 steps < 500)
['loss', 'samples']

Protocol (subclass :class:`Callback`, override what you need; every hook is optional):

* ``on_start(trainer)``: after setup, resume and every refusal, before the first step.
* ``on_step(trainer, step)``: every ``callback.every`` steps (``every = 0``: never).
* ``on_log(trainer, step, record)``: each logged training window (the ``metrics.jsonl`` record).
* ``on_eval(trainer, step, metrics)``: after each periodic evaluation.
* ``on_end(trainer, summary) -> dict | None``: after training (not after an interrupt or a
  divergence), with the model holding its evaluation weights in eval mode; a returned dict of
  ``{name: path}`` is merged into ``summary["plots"]``.

Callbacks run on rank 0 only, under a forked CPU (and CUDA) RNG, and the engine puts the model back
in training mode after each: running a callback, or not, never changes training. Time spent in
them is not training time. Use ``trainer.eval_weights()`` to see the EMA weights.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepgen.train.engine import Trainer


class Callback:
    """Base class with no-op hooks (see the module docstring for when each runs)."""

    #: Call :meth:`on_step` every this many steps (0: never).
    every: int = 0

    def on_start(self, trainer: Trainer) -> None:
        pass

    def on_step(self, trainer: Trainer, step: int) -> None:
        pass

    def on_log(self, trainer: Trainer, step: int, record: dict[str, Any]) -> None:
        pass

    def on_eval(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        pass

    def on_end(self, trainer: Trainer, summary: dict[str, Any]) -> dict[str, str] | None:
        return None


class PlotCallback(Callback):
    """End of training: ``loss.png`` and ``samples.png`` (a density map with samples for 2D data).

    ``out``/``data`` default to the trainer's run folder and dataset; ``options`` (sampling
    options, default the model's) and ``seed`` choose how samples.png is drawn.
    """

    def __init__(self, out: str | Path | None = None, data=None, options: dict | None = None, seed: int = 0):
        self.out, self.data, self.options, self.seed = out, data, options, seed

    def on_end(self, trainer, summary):
        from deepgen.plots import write_run_plots  # presentation is imported here, never by the engine

        model = trainer.model
        try:
            return write_run_plots(
                self.out or trainer.out, model, self.data or trainer.data, options=self.options, seed=self.seed
            )
        finally:
            model.eval()  # write_run_plots leaves the model training; fit() promises eval mode


class SampleGridCallback(Callback):
    """Every ``every`` steps: ``samples/step_000500.png`` from the evaluation (EMA) weights.

    The same seed every time, so successive grids show the same noise decoded by a better model.
    """

    def __init__(self, every: int, out: str | Path | None = None, n: int = 64, seed: int = 0):
        self.every, self.out, self.n, self.seed = every, out, n, seed

    def on_step(self, trainer, step):
        from deepgen.plots import save_samples

        folder = Path(self.out or trainer.out) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        model = trainer.model
        with trainer.eval_weights():
            model.eval()
            data = trainer.data.test.x if trainer.data.info.dim == 2 else None
            save_samples(model, folder / f"step_{step:06d}.png", n=self.n, seed=self.seed, data=data)


class BannerCallback(Callback):
    """Prints what is about to be trained, once every refusal has passed (a refused run prints nothing)."""

    def __init__(self, lines: list[str], file=None):
        self.lines, self.file = lines, file

    def on_start(self, trainer):
        print("\n".join(self.lines), file=self.file or sys.stdout, flush=True)


def run_plots_callbacks(out: str | Path | None = None, data=None, sample_every: int = 0) -> list[Callback]:
    """The callbacks ``deepgen train`` and ``compare`` use: end-of-run plots, and sample grids every
    ``sample_every`` steps when it is > 0."""
    cbs: list[Callback] = [PlotCallback(out, data)]
    if sample_every:
        cbs.append(SampleGridCallback(sample_every, out))
    return cbs
