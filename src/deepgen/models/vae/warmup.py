"""KL warm-up (Bowman et al. 2016, "KL cost annealing"; Sønderby et al. 2016, arXiv:1602.02282):
the weight of the KL term ramps linearly from 0 to 1 over the first training steps, so the decoder
learns to use the latents before the KL pulls each posterior onto its prior.

The model counts its own steps in the buffer ``kl_step`` (like batch norm's
``num_batches_tracked``), registered only when warm-up is on, so checkpoints of runs without it
keep their keys and a resumed run continues the ramp. Each loss evaluated in training mode with
gradients advances it by 1 / grad_accum (the trainer's ``grad_accum``, read in
``configure_optimizers``), so it equals the trainer's global step.
"""

from __future__ import annotations

import torch


class KLWarmup:
    """Mixin for models whose loss has a KL term: :meth:`warmup_factor` and the step counter."""

    def _setup_kl_warmup(self, steps: int) -> None:
        self._kl_warmup_steps = int(steps)
        self._grad_accum = 1
        if steps:
            self.register_buffer("kl_step", torch.zeros((), dtype=torch.float64))

    def warmup_factor(self, step: int | None = None) -> float | torch.Tensor:
        """``min(1, step / kl_warmup)`` at ``step`` (default: the model's own count, as a 0-d tensor on
        its device: no host synchronisation per step); 1.0 without warm-up."""
        steps = self._kl_warmup_steps
        if not steps:
            return 1.0
        if step is None:
            # floor: every micro-batch of one accumulated step gets that step's weight (1e-6 absorbs
            # the rounding of k additions of 1/k)
            return torch.clamp(torch.floor(self.kl_step + 1e-6) / steps, max=1.0).float()
        return min(1.0, step / steps)

    def count_kl_step(self) -> None:
        """Advance the step count: call once per loss (it counts only training losses with gradients)."""
        if self._kl_warmup_steps and self.training and torch.is_grad_enabled():
            self.kl_step.add_(1.0 / self._grad_accum)

    def configure_optimizers(self, cfg):
        # micro-batches per optimiser step, so that kl_step counts steps
        self._grad_accum = max(1, int(getattr(cfg, "grad_accum", 1) or 1))
        return super().configure_optimizers(cfg)
