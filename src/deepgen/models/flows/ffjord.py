"""FFJORD (Grathwohl et al. 2019, arXiv:1810.01367): a continuous normalizing flow.

``dx/dt = f(t, x)`` from data (t = 0) to latent (t = t1); the instantaneous change of variables
(Chen et al. 2018, arXiv:1806.07366, theorem 1) gives ``log p(x) = log p_Z(z(t1)) + int_0^t1 tr(df/dx) dt``.
FFJORD's contribution is Hutchinson's unbiased trace estimate during training (one vector-Jacobian
product per function evaluation instead of D). Evaluation uses the exact trace for examples of at
most ``exact_max_dim`` entries (2-D toys) -- exact up to the ODE solver's tolerance -- and Hutchinson
above, labelled *estimate*. The field is an MLP of concat-squash layers (FFJORD's ``ODEnet``); images
are flattened. Both directions run the shared adaptive Dormand-Prince solver of
:mod:`deepgen.samplers.ode` (or a fixed-step one for cheap training).

>>> from deepgen.data import DataInfo
>>> m = FFJORD(DataInfo("toy", (2,)), FFJORDConfig(hidden=(8,), method="rk4", steps=2)).eval()
>>> m.log_likelihood(torch.zeros(3, 2)).kind.value
'exact'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from deepgen.bijectors import ContinuousFlow, ODENet
from deepgen.errors import ConfigError
from deepgen.models.flows.common import VectorFlow
from deepgen.registry import register


@dataclass(frozen=True)
class FFJORDConfig:
    """Options of :class:`FFJORD`.

    blocks: continuous flows in sequence (the paper: 1 on 2-D toys, several on images).
    hidden: hidden sizes of each field's concat-squash MLP (the paper's toys: 3 layers of 64).
    activation: of the field (softplus or tanh; smooth fields keep the solver's steps large).
    t1: integration time of each block.
    method: ODE solver, rk45 (adaptive, the paper's dopri5) or fixed-step rk4/heun/euler.
    steps: steps of a fixed-step solver.
    rtol, atol: tolerances of rk45.
    exact_max_dim: exact trace in evaluation for examples of at most this many entries.
    class_conditional: condition the field on the class label.
    """

    blocks: int = 1
    hidden: tuple[int, ...] = (64, 64, 64)
    activation: Literal["softplus", "tanh"] = "softplus"
    t1: float = 1.0
    method: Literal["rk45", "rk4", "heun", "euler"] = "rk45"
    steps: int = 0
    rtol: float = 1e-5
    atol: float = 1e-5
    exact_max_dim: int = 16
    class_conditional: bool = False

    def __post_init__(self):
        if self.blocks < 1 or not self.t1 > 0:
            raise ConfigError("ffjord needs blocks >= 1 and t1 > 0")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"ffjord hidden sizes must be positive and non-empty, got {self.hidden}")
        if self.method != "rk45" and self.steps < 1:
            raise ConfigError(f"the fixed-step solver {self.method} needs steps >= 1")


@register("ffjord")
class FFJORD(VectorFlow):
    """FFJORD (Grathwohl et al. 2019, arXiv:1810.01367): continuous normalizing flow with a stochastic trace.

    Density: exact (to solver tolerance) in evaluation for small examples, else Hutchinson estimate.
    ``last_nfe`` of each block counts the field evaluations of its last solve.
    """

    Config = FFJORDConfig
    condition_option = "class_conditional"
    density_summary = "exact in low dimensions (to ODE tolerance), else Hutchinson estimate"
    test_options = {"hidden": (8,), "method": "rk4", "steps": 2}

    def build_layers(self, d):
        cfg = self.config
        return [
            ContinuousFlow(
                ODENet(d, cfg.hidden, context_features=self.context_features, activation=cfg.activation),
                t1=cfg.t1,
                method=cfg.method,
                steps=cfg.steps if cfg.method != "rk45" else None,
                rtol=cfg.rtol,
                atol=cfg.atol,
                exact_max_dim=cfg.exact_max_dim,
            )
            for _ in range(cfg.blocks)
        ]


_ = torch  # doctest namespace
