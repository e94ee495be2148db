"""What a model's ``train_step`` sees: :class:`StepContext`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from deepgen.train import distributed as D
from deepgen.train.accel import no_autocast

if TYPE_CHECKING:
    from deepgen.train.engine import Trainer


class StepContext:
    """Optimisers, extra batches, and the one way to take an optimiser step.

    Attributes: ``global_step`` (0-based index of the current step, the first one of a fused call),
    ``optimizers`` (dict by name), ``world_size``, ``rank``, ``device``, ``grad_accum``,
    ``micro_batch`` (index of the current micro-batch in this step, 0 .. grad_accum - 1),
    ``grad_clip``, ``precision``, and ``lr_factors``: during a fused call (``model.train_steps``,
    ``--steps-per-call``), the learning-rate multiplier of each of its steps (None for a constant
    rate; each optimiser group's base rate is ``group["initial_lr"]``).

    Every optimiser step goes through :meth:`step` (autograd) or :meth:`apply_gradients` (gradients
    written by hand, e.g. contrastive divergence), so that distributed gradient averaging, gradient
    clipping and gradient accumulation happen in exactly one place for every family.

    Gradient accumulation: the engine calls the model's (default) ``train_step`` once per
    micro-batch; :meth:`step` zeroes the gradients at the first, backpropagates ``loss / grad_accum``
    at each (so the sum is the gradient of the mean loss over all micro-batches), and steps the
    optimiser at the last. Under bf16 autocast the engine runs ``train_step`` in autocast and
    :meth:`step` leaves it for the backward pass and the optimiser.
    """

    def __init__(self, trainer: Trainer):
        self._t = trainer
        self.global_step = 0
        self.optimizers: dict[str, torch.optim.Optimizer] = trainer.optimizers
        self.world_size = trainer.dist.world_size
        self.rank = trainer.dist.rank
        self.device = trainer.dist.device
        self.grad_accum = trainer.config.grad_accum
        self.micro_batch = 0
        self._precision = self.precision = trainer.config.precision
        self.grad_clip = trainer.config.grad_clip
        self.lr_factors: list[float] | None = None
        self._synced_by_ddp = False
        #: Total gradient norm of the last step of each optimiser that asked for gradient-norm skipping.
        self.grad_norms: dict[str, torch.Tensor] = {}
        self._params = {
            name: [p for g in opt.param_groups for p in g["params"]] for name, opt in self.optimizers.items()
        }

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, Any]:
        """``model.loss(x, y)``, through the DistributedDataParallel wrapper when there is one."""
        self._synced_by_ddp = self._t.ddp is not None
        return self._t.forward_module(x, y)  # the DDP wrapper and/or torch.compile, when in use

    def step(self, loss: torch.Tensor, name: str = "main", *, skip_if_grad_norm_above: float | None = None) -> bool:
        """Zero the grads of optimiser ``name``, backpropagate ``loss``, sync, clip, and step.

        With gradient accumulation: zero at the first micro-batch, step at the last.
        ``skip_if_grad_norm_above``: see :meth:`apply_gradients`. Returns whether the optimiser
        stepped (False at a micro-batch before the last, and for a skipped update).
        """
        opt = self.optimizers[name]
        with no_autocast(self._precision, self.device):
            if self.micro_batch == 0:
                opt.zero_grad(set_to_none=True)
            (loss / self.grad_accum if self.grad_accum > 1 else loss).backward()
            if self.micro_batch == self.grad_accum - 1:
                return self.apply_gradients(name, skip_if_grad_norm_above=skip_if_grad_norm_above)
        return False

    def apply_gradients(self, name: str = "main", *, skip_if_grad_norm_above: float | None = None) -> bool:
        """Sync (when distributed and not done by DDP), clip and apply the gradients now in ``.grad``.

        Models that compute gradients without autograd (contrastive divergence) set ``p.grad``
        themselves and call this.

        ``skip_if_grad_norm_above``: gradient-norm skipping (Child, 2021, VD-VAE, arXiv:2011.10650):
        when the total gradient norm (after the distributed sync, so every rank decides alike, and
        before clipping) is above this value or not finite, the optimiser does not step. The norm
        is then stored, detached, in ``grad_norms[name]`` (it costs one host sync). Returns whether
        the optimiser stepped.
        """
        params = self._params[name]
        with no_autocast(self._precision, self.device):
            if self.world_size > 1 and not self._synced_by_ddp:
                D.all_reduce_grads(params, self.world_size)
            norm = None
            if self._t.config.grad_clip:
                norm = torch.nn.utils.clip_grad_norm_(params, self._t.config.grad_clip, foreach=True)
            if skip_if_grad_norm_above is not None:
                if norm is None:
                    grads = [p.grad for p in params if p.grad is not None]
                    norm = torch.nn.utils.get_total_norm(grads, foreach=True) if grads else torch.zeros(())
                self.grad_norms[name] = norm.detach()
                if not float(norm) <= skip_if_grad_norm_above:  # NaN compares False: skipped too
                    return False
            self.optimizers[name].step()
        return True

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A further training batch in this step (e.g. for several critic updates per step)."""
        return self._t._next_batch()
