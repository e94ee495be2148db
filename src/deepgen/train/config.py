"""The trainer's configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from deepgen.config import check_positive
from deepgen.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    """Everything the training engine needs; stored in every checkpoint.

    ``batch_size`` is per process (under torchrun the global batch is ``batch_size * world_size``).
    ``*_every`` of 0 disables that periodic action; the final step always logs and checkpoints.
    ``ema_decay`` > 0 keeps an exponential moving average of the weights, which evaluation and
    sampling then use. ``threads`` None leaves torch's default (all cores; 1 per process under
    torchrun). ``device``: ``auto`` (a GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``.

    ``grad_accum`` N > 1 sums the gradients of N consecutive batches of ``batch_size`` before each
    optimiser step: for a model trained through ``loss`` (the default ``train_step``) one step then
    equals one step on a batch of ``N * batch_size`` (the same examples, the same mean loss), with
    the memory of one batch. ``precision="bf16"`` runs each step's forward under bfloat16 autocast
    (backward, optimiser, evaluation stay fp32). ``optimizer``: ``adam`` (coupled L2 weight decay),
    ``adamw`` (decoupled) or ``adagrad`` (``betas`` unused), built by
    :func:`deepgen.models.base.build_optimizer` for every model that does not bring its own.
    ``compile`` wraps the model's loss in ``torch.compile`` (models with the default ``train_step``
    only). ``steps_per_call`` N > 1 lets a model whose updates are so small that per-step Python
    dominates (the RBM) take up to N steps in one call of its ``train_steps``; a call never crosses
    a logging, evaluation, checkpoint or callback step, so those happen at the same steps as with
    1, and the results agree up to float rounding (with a random per-batch transform, such as
    dynamic binarisation, they agree in distribution: a call draws its batches' transforms before
    its updates' random numbers).

    ``keep_best`` writes ``best.pt`` (a checkpoint in the same format, which ``load_run``, ``deepgen
    eval RUN/best.pt`` and ``sample`` read) after every evaluation whose validation NLL (the ``nll``
    of the model's held-out numbers: exact, a bound or an estimate, as the model's density is) is
    the lowest so far. ``patience`` N > 0 also stops training when N evaluations in a row have not
    lowered it (early stopping with a look-ahead of N evaluations, as the MADE authors' 30 epochs);
    it implies ``keep_best``. Both need ``eval_every`` > 0.

    ``time_limit`` T (seconds) ends training at whichever comes first, ``steps`` or T seconds of
    the training loop's wall-clock time (evaluations and checkpoints count; start-up does not;
    the time of a resumed run adds to its earlier time). The step that crosses T is the last:
    its evaluation and checkpoint still happen, so the run ends a little after T (with
    ``steps_per_call`` > 1 the call that crosses T is the last; an evaluation or checkpoint that
    crosses T makes its step the last; under DDP the ranks compare clocks every 10 steps, so up
    to 9 steps more run; ``compile``'s compilation, in the first step, counts). With the cosine
    schedule the decay follows whichever is further along, the steps or the time (the time
    counted from the start, the steps from the end of the warm-up), so a run stopped by the clock
    after its warm-up has annealed its learning rate to zero:
    the budget-aware schedule of Li et al.'s budgeted training (arXiv:1905.04753; their budget is
    iterations, here it may be time). The last step and the learning rates then depend on the
    machine's speed: such a run is not reproducible step for step, as a run to a fixed ``steps`` is.
    """

    steps: int = 2000
    batch_size: int = 128
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    optimizer: Literal["adam", "adamw", "adagrad"] = "adam"
    lr_schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = 0
    grad_clip: float | None = None
    ema_decay: float = 0.0
    seed: int = 0
    log_every: int = 50
    eval_every: int = 500
    eval_examples: int = 2000
    ckpt_every: int = 500
    threads: int | None = None
    device: str = "auto"
    progress: bool = True
    grad_accum: int = 1
    precision: Literal["fp32", "bf16"] = "fp32"
    compile: bool = False
    steps_per_call: int = 1
    keep_best: bool = False
    patience: int = 0
    time_limit: float | None = None

    def __post_init__(self):
        check_positive(
            self, "steps", "batch_size", "lr", "threads", "eval_examples", "grad_accum", "steps_per_call", "time_limit"
        )
        if self.optimizer not in ("adam", "adamw", "adagrad"):
            raise ConfigError(f"TrainConfig.optimizer must be adam, adamw or adagrad, got {self.optimizer!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"TrainConfig.precision must be fp32 or bf16, got {self.precision!r}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"TrainConfig.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"TrainConfig.grad_clip must be > 0 or None, got {self.grad_clip}")
        for n in ("log_every", "eval_every", "ckpt_every", "warmup_steps", "patience"):
            if getattr(self, n) < 0:
                raise ConfigError(f"TrainConfig.{n} must be >= 0")
        if self.tracks_best and not self.eval_every:
            what = "patience" if self.patience else "keep_best"
            raise ConfigError(f"TrainConfig.{what} watches the validation NLL, which needs eval_every > 0")

    @property
    def tracks_best(self) -> bool:
        """Whether the trainer keeps ``best.pt`` (``keep_best``, or ``patience`` > 0)."""
        return self.keep_best or self.patience > 0

    def lr_factor(self, step: int, elapsed: float | None = None) -> float:
        """Multiplier of ``lr`` at ``step`` (linear warm-up, then constant or cosine decay to 0).

        With a ``time_limit``, ``elapsed`` (seconds of training so far) moves the cosine on too: its
        progress is the larger of the fraction of post-warm-up steps taken and the fraction of the
        time limit used."""
        import math

        if self.warmup_steps and step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.lr_schedule == "cosine":
            t = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
            if self.time_limit and elapsed is not None:
                t = max(t, elapsed / self.time_limit)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
        return 1.0


#: Fields that may change when a run is resumed. Most leave the result as it was; ``device``,
#: ``threads``, ``compile`` and ``steps_per_call`` change where and how fast it runs (floating-point results may then
#: differ in the last bits, as between any two machines).
RESUMABLE_CHANGES = (
    "steps",
    "progress",
    "log_every",
    "eval_every",
    "eval_examples",
    "ckpt_every",
    "device",
    "threads",
    "compile",
    "steps_per_call",
    "keep_best",
    "patience",
    "time_limit",
)
