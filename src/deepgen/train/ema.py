"""Exponential moving average of model weights (Polyak averaging)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn


class EMA:
    """Shadow copy ``s <- decay * s + (1 - decay) * p`` of every floating-point parameter.

    Buffers (e.g. batch-norm statistics) are copied, not averaged. The effective decay warms up as
    ``min(decay, (1 + n) / (10 + n))`` so that early averages are not dominated by the random init.
    Updates use ``torch._foreach_lerp_`` (one fused call for all tensors).
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.num_updates = 0
        self._params = [p for p in model.parameters() if p.dtype.is_floating_point]
        # detached views share storage with the parameters (optimisers update in place), made once:
        # re-detaching every step costs as much as the averaging itself on small models
        self._targets = [p.detach() for p in self._params]
        self.shadow = [p.detach().clone() for p in self._params]
        self._model = model

    def update(self) -> None:  # no torch.no_grad() needed: nothing here is tracked, and it costs ~10 us
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        torch._foreach_lerp_(self.shadow, self._targets, 1.0 - d)

    def state_dict(self) -> dict:
        return {
            "decay": self.decay,
            "num_updates": self.num_updates,
            "shadow": [s.clone() for s in self.shadow],
        }

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.num_updates = state["num_updates"]
        for s, v in zip(self.shadow, state["shadow"], strict=True):
            s.copy_(v)

    def ema_model_state(self) -> dict:
        """The model's state dict with parameters replaced by their averages (buffers as they are)."""
        with self.averaged():
            return {k: v.detach().clone() for k, v in self._model.state_dict().items()}

    @torch.no_grad()
    def copy_to_model(self) -> None:
        """Overwrite the model's parameters with their averages (for good)."""
        for p, s in zip(self._params, self.shadow):
            p.copy_(s)

    @contextlib.contextmanager
    def averaged(self):
        """Temporarily load the averaged weights into the model."""
        backup = [p.detach().clone() for p in self._params]
        with torch.no_grad():
            for p, s in zip(self._params, self.shadow):
                p.copy_(s)
        try:
            yield self._model
        finally:
            with torch.no_grad():
                for p, b in zip(self._params, backup):
                    p.copy_(b)
