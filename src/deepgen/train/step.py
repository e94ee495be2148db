"""What a model's ``train_step`` sees: :class:`StepContext`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from deepgen.train import distributed as D

if TYPE_CHECKING:
    from deepgen.train.engine import Trainer


class StepContext:
    """Optimisers, extra batches, and the one way to take an optimiser step.

    Attributes: ``global_step`` (0-based index of the current step), ``optimizers`` (dict by name),
    ``world_size``, ``rank``, ``device``.

    Every optimiser step goes through :meth:`step` (autograd) or :meth:`apply_gradients` (gradients
    written by hand, e.g. contrastive divergence), so that distributed gradient averaging and
    gradient clipping happen in exactly one place for every family.
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
