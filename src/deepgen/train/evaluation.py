"""The engine's periodic held-out evaluation: the model's own ``evaluate(x, y)`` averaged over batches.

Which metrics to compute is the model's business (``GenerativeModel.evaluate``); this module only
feeds it validation batches on the training device, in fp32 (an NLL in bits/dim is a reported
number, so it is never computed under bf16 autocast), with the evaluation (EMA) weights, under a
forked RNG so that evaluating, or not, never changes training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepgen.train.accel import fork_rng
from deepgen.train.batches import passes_y, storage_and_decoder

if TYPE_CHECKING:
    from deepgen.train.engine import Trainer


def evaluate(t: Trainer, batch_size: int = 500) -> dict[str, float]:
    """Means of ``model.evaluate`` over up to ``eval_examples`` validation examples ({} without any)."""
    val = t.data.val.subset(t.config.eval_examples)
    n = len(val)
    if n == 0:
        return {}
    model, device = t.model, t.dist.device
    storage, decode = storage_and_decoder(val)
    labels = val.y if (val.y is not None and passes_y(t.data.info, model)) else None
    totals: dict[str, float] = {}
    with fork_rng(device), t.eval_weights():
        model.eval()
        try:
            for i in range(0, n, batch_size):
                xb = storage[i : i + batch_size].to(device, non_blocking=True)
                if decode is not None:
                    xb = decode(xb)
                yb = None if labels is None else labels[i : i + batch_size].to(device)
                for k, v in model.evaluate(xb, yb).items():
                    totals[k] = totals.get(k, 0.0) + float(v) * len(xb)
        finally:
            model.train()
    return {k: v / n for k, v in totals.items()}
