"""Training: one engine (:class:`Trainer`), checkpoints, EMA, distributed helpers, run loading."""

from deepgen.train.config import TrainConfig
from deepgen.train.engine import StepContext, Trainer, TrainingDiverged
from deepgen.train.run import LoadedRun, build_model, load_run

__all__ = [
    "Trainer",
    "TrainConfig",
    "StepContext",
    "TrainingDiverged",
    "LoadedRun",
    "build_model",
    "load_run",
]
