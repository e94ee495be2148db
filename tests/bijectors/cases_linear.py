"""Contract cases of the linear, normalisation and emerging-convolution bijectors (collected by
``test_bijector_contract.py``). Parameters are perturbed away from their initial values: a layer that
starts as a rotation or the identity would pass the log-det checks trivially.

``check_bijector`` runs the layer once in its current mode, then compares eval-mode outputs with that
first output: ActNorm cases start in training mode (the first batch initialises them), BatchNormFlow
cases are built in eval mode with non-trivial running statistics (a training-mode forward uses the
batch's statistics, which differ from the eval-mode map the checker inverts).
"""

from __future__ import annotations

import torch

from deepgen.bijectors.emerging import EmergingConv
from deepgen.bijectors.linear import Conv1x1, InvertibleLinear
from deepgen.bijectors.normalization import ActNorm, BatchNormFlow
from deepgen.bijectors.testing import Case


def _perturbed(b, scale: float = 0.3, seed: int = 0):
    """Add seeded Gaussian noise (std ``scale``) to every parameter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in b.parameters():
            p.add_(torch.randn(p.shape, generator=g).to(p.dtype) * scale)
    return b


def _actnorm_set(shape, seed: int = 0):
    """An ActNorm marked initialised, with random parameters (no data-dependent init)."""
    b = _perturbed(ActNorm(shape), 0.5, seed)
    b.initialized.fill_(True)
    return b


def _batchnorm_eval(shape, seed: int = 0):
    """A BatchNormFlow in eval mode with random parameters and running statistics."""
    b = _perturbed(BatchNormFlow(shape), 0.5, seed)
    g = torch.Generator().manual_seed(seed + 100)
    b.running_mean.copy_(torch.randn(b.running_mean.shape, generator=g))
    b.running_var.copy_(torch.rand(b.running_var.shape, generator=g) * 2 + 0.2)
    return b.eval()


CASES = [
    Case("invertible-linear-lu", lambda: _perturbed(InvertibleLinear(4, seed=1)), (3, 4)),
    Case("invertible-linear-free", lambda: _perturbed(InvertibleLinear(4, lu=False, seed=2)), (3, 4)),
    Case("conv1x1-lu", lambda: _perturbed(Conv1x1(3, seed=3)), (2, 3, 2, 3)),
    Case("conv1x1-free", lambda: _perturbed(Conv1x1(3, lu=False, seed=4)), (2, 3, 3, 2)),
    Case("actnorm-vector-data-init", lambda: ActNorm(4), (5, 4)),
    Case("actnorm-image-data-init", lambda: ActNorm(3), (3, 3, 2, 3)),
    Case("actnorm-image-set", lambda: _actnorm_set(2, seed=5), (2, 2, 3, 2)),
    Case("actnorm-per-pixel", lambda: _actnorm_set((2, 2, 3), seed=6), (2, 2, 2, 3)),
    Case("batchnorm-flow-vector", lambda: _batchnorm_eval(4, seed=7), (3, 4)),
    Case("batchnorm-flow-image", lambda: _batchnorm_eval(2, seed=8), (2, 2, 3, 2)),
    Case("emerging-conv-3x3", lambda: _perturbed(EmergingConv(2, seed=9)), (2, 2, 3, 4)),
    Case("emerging-conv-5x5", lambda: _perturbed(EmergingConv(2, 5, seed=10), 0.2), (2, 2, 4, 3)),
]
