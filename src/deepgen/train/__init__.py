"""Training: one engine (:class:`Trainer`), checkpoints, EMA, callbacks, distributed helpers, run loading."""

from deepgen.train.callbacks import Callback, PlotCallback, SampleGridCallback, run_plots_callbacks
from deepgen.train.config import TrainConfig
from deepgen.train.engine import StepContext, Trainer, TrainingDiverged
from deepgen.train.run import LoadedRun, build_model, init_from, load_run

__all__ = [
    "Trainer",
    "TrainConfig",
    "StepContext",
    "TrainingDiverged",
    "Callback",
    "PlotCallback",
    "SampleGridCallback",
    "run_plots_callbacks",
    "LoadedRun",
    "build_model",
    "init_from",
    "load_run",
]
