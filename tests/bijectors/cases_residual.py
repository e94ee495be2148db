"""Contract cases for planar/radial flows and invertible residual blocks (collected by test_bijector_contract).

Parameters are random and far from the identity; residual blocks use ``log_det="exact"`` (the contract
compares log-dets with autograd's) and are built in eval mode: a training-mode forward runs one more
power-iteration step of the spectral norms, which moves the map by ~1e-6 after a float64 conversion.
Planar's bisection and the residual fixed-point inverses are numerical but run to float64 resolution,
so the default ``atol`` (1e-7) holds.
"""

from __future__ import annotations

import torch

from deepgen.bijectors.planar import Planar, Radial
from deepgen.bijectors.residual import ResidualBlock, lipschitz_convnet, lipschitz_mlp
from deepgen.bijectors.testing import Case


def _seeded(seed, build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _set(module, **values):
    with torch.no_grad():
        for name, v in values.items():
            getattr(module, name).copy_(torch.as_tensor(v, dtype=torch.float32))
    return module


def _planar(seed=0, scale=1.5):
    def build():
        f = Planar(3)
        return _set(f, u=torch.randn(3) * scale, w=torch.randn(3) * scale, b=torch.randn(()))

    return _seeded(seed, build)


def _planar_near_limit():
    # wᵀu very negative: wᵀû = -1 + softplus(-9) ≈ -1, the map is close to folding
    w = torch.tensor([1.0, -0.5, 0.3])
    return _set(Planar(3), w=w, u=-8 * w / (w @ w) * 1.125, b=0.2)


def _radial(beta_raw):
    return _seeded(1, lambda: _set(Radial(3), x0=torch.randn(3) * 0.5, alpha_raw=0.3, beta_raw=beta_raw))


def _amplified(g, factor=3.0):
    """Scale the raw weights up so spectral normalisation is active in every layer (Lip(g) near coeff)."""
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("weight"):
                p.mul_(factor)
    return g


def _residual_mlp():
    return _seeded(2, lambda: ResidualBlock(_amplified(lipschitz_mlp(3, hidden=(16, 16))), log_det="exact").eval())


def _residual_conv():
    def build():
        g = _amplified(lipschitz_convnet(2, 4))
        g(torch.zeros(1, 2, 3, 3))  # sizes and converges the power-iteration vectors for 3x3 inputs
        return ResidualBlock(g, log_det="exact").eval()

    return _seeded(3, build)


CASES = [
    Case("planar", _planar, (5, 3)),
    Case("planar-near-limit", _planar_near_limit, (5, 3)),
    Case("radial-expanding", lambda: _radial(1.5), (5, 3)),
    Case("radial-contracting", lambda: _radial(-3.0), (5, 3)),
    Case("residual-mlp-exact", _residual_mlp, (4, 3)),
    Case("residual-conv-exact", _residual_conv, (2, 2, 3, 3)),
]
