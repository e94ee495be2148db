"""Contract cases of the continuous flows (``deepgen.bijectors.cnf``), collected by test_bijector_contract.py.

Random (non-zero) fields, adaptive rk45 at tight tolerances and the exact trace, so the log-dets
match autograd's ``slogdet`` to the solver's accuracy (better than 1e-9 here; the cases allow 1e-8).
"""

from __future__ import annotations

import torch

from deepgen.bijectors.cnf import ContinuousFlow, ODENet
from deepgen.bijectors.testing import Case

TIGHT = dict(method="rk45", rtol=1e-10, atol=1e-10, train_divergence="exact", eval_divergence="exact")


def _flow(features: int, context: int | None = None, seed: int = 0) -> ContinuousFlow:
    """A random field strong enough for O(0.1-1) log-dets (default init gives about 0.01)."""
    net = ODENet(features, hidden=(8, 8), context_features=context, activation="tanh")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.6)
    return ContinuousFlow(net, **TIGHT)


CASES = [
    Case("cnf-2d", lambda: _flow(2), (4, 2), atol=1e-8),
    Case("cnf-3d", lambda: _flow(3, seed=1), (3, 3), atol=1e-8),
    Case("cnf-conditional", lambda: _flow(2, context=3, seed=2), (3, 2), context=3, atol=1e-8),
]
