"""Restricted Boltzmann machines trained by contrastive divergence, with exact and AIS likelihoods.

One energy covers every unit type. With visible units v (D), hidden units h (p), weights W (D x p)
and biases b, c::

    -E(v, h) = sum_i s_v(v_i) + b.v + sum_j s_h(h_j) + c.h + v^T W h,      p(v, h) = exp(-E) / Z

where a unit type fixes its values and its self-term s: ``bernoulli`` (0/1, s = 0), ``spin``
(+-1, s = 0) or ``gaussian`` (real, unit variance, s(u) = -u^2 / 2). Given the other layer, every
unit is independent with *field* x (``c + W^T v`` for h_j, ``b + W h`` for v_i): p(u = 1) = sigmoid(x)
(bernoulli), p(u = +1) = sigmoid(2x) (spin) or N(x, 1) (gaussian). Summing one unit out gives its
log-partition A(x) = softplus(x), log(2 cosh x) or x^2 / 2 + log(2 pi) / 2, hence the free energy

    F(v) = -sum_i s_v(v_i) - b.v - sum_j A_h(c_j + (W^T v)_j),      log p(v) = -F(v) - log Z.

Binary visible units with Gaussian hidden units are the lectures' form H(s, l) = sum_m l_m^2 / 2 -
sum_i h_i s_i - sum_{i,m} W_im s_i l_m (``visible=spin, hidden_units=gaussian``; the hidden biases
c then shift the Gaussians' means); real-valued data take Gaussian-Bernoulli units (Hinton &
Salakhutdinov 2006, unit variance on standardised data). Gaussian units on both sides have no
normalisable joint in general and are refused.

Training (no autograd; the gradients go to ``ctx.apply_gradients``): the log-likelihood gradient
d log p(v) / dW = E[v h^T | v] - E_model[v h^T] with the model expectation from k steps of block
Gibbs sampling started at the data (CD-k, Hinton 2002, Neural Computation 14(8)) or from persistent
chains (PCD, Tieleman 2008, ICML), by SGD with momentum and weight decay on W (Hinton 2010, "A
practical guide to training RBMs", UTML TR 2010-003). Hidden statistics use their conditional means,
as the guide recommends.

Likelihood. When the smaller enumerable layer (binary units) has at most ``exact_max_units`` units,
log Z is a log-sum-exp over its 2^n states (exact). Otherwise log Z is estimated by annealed
importance sampling (Neal 2001; for RBMs Salakhutdinov & Murray 2008, ICML) along
``-E_beta = s_v + s_h + (1 - beta) b_A.v + beta (b.v + c.h + v^T W h)`` from the base-rate model
(W = 0, visible biases b_A fitted to the data's means, so Z_A is known) with Gibbs transitions at
every beta: an unbiased estimate of Z, so log Z is underestimated in expectation and the NLL's
estimate is optimistic by the same amount (their paper's caveat); its standard error is shared by
every example and reported as such. :meth:`RBM.prepare_likelihood` runs it once per evaluation.
Salakhutdinov & Murray report 86.34 nats on binarised MNIST for 500 hidden units and CD-25.

>>> from deepgen.data import DataInfo
>>> rbm = RBM(DataInfo("bits", (6,), levels=2), RBMConfig(hidden=4))
>>> rbm.log_likelihood(torch.ones(2, 6)).kind.value
'exact'
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.errors import ConfigError, DataError
from deepgen.metrics.likelihood import logmeanexp_with_stderr
from deepgen.models.base import DensityKind, GenerativeModel, LogLikelihood
from deepgen.registry import register

LOG_2PI = math.log(2 * math.pi)
UNITS = ("bernoulli", "spin", "gaussian")


def version_key(tensors) -> tuple:
    """Changes whenever one of ``tensors`` is modified in place (optimiser steps, loading): the key
    under which a model caches its log Z (RBM, EBM) so it is recomputed only for new weights."""
    return tuple((t.data_ptr(), t._version) for t in tensors)


# -- unit types ---------------------------------------------------------------------------------------
def self_term(kind: str, u: torch.Tensor) -> torch.Tensor:
    """sum of s(u) over the last dimension: 0 for binary units, -u^2 / 2 for Gaussian ones."""
    return -0.5 * u.pow(2).sum(-1) if kind == "gaussian" else u.new_zeros(u.shape[:-1])


def log_partition(kind: str, x: torch.Tensor) -> torch.Tensor:
    """A(x) = log sum_u exp(s(u) + u x), elementwise: one unit summed (or integrated) out."""
    if kind == "bernoulli":
        return F.softplus(x)
    if kind == "spin":
        return torch.logaddexp(x, -x)
    return 0.5 * x * x + 0.5 * LOG_2PI


def unit_mean(kind: str, x: torch.Tensor) -> torch.Tensor:
    """E[u | field x] = A'(x)."""
    if kind == "bernoulli":
        return torch.sigmoid(x)
    if kind == "spin":
        return torch.tanh(x)
    return x


def unit_sample(kind: str, x: torch.Tensor, generator=None) -> torch.Tensor:
    """u ~ p(u | field x)."""
    if kind == "gaussian":
        return x + torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    prob = torch.sigmoid(2 * x if kind == "spin" else x)
    # uniform < p: the same Bernoulli draw, about 3x faster than torch.bernoulli on CPU (140 vs 46 us, 100 x 64)
    u = (torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device) < prob).to(x.dtype)
    return 2 * u - 1 if kind == "spin" else u


def all_states(kind: str, n: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """The 2^n configurations of n binary units (rows)."""
    states = torch.tensor(list(itertools.product((0.0, 1.0), repeat=n)), dtype=dtype, device=device)
    return 2 * states - 1 if kind == "spin" else states


class MomentumSGD(torch.optim.Optimizer):
    """SGD with (heavy-ball) momentum, as ``torch.optim.SGD(momentum=m)`` computes it, in two foreach
    calls: ``buf = m buf + g; p -= lr buf``. torch's SGD spent about 0.3 ms of Python per update, more
    than the RBM's arithmetic at batch 10-100. ``step`` is bound on the instance, past the profiling
    wrapper ``torch.optim.Optimizer`` puts around every subclass's ``step`` (a further 30 us an update;
    step hooks are therefore not run)."""

    def __init__(self, params, lr: float, momentum: float = 0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum})
        self.step = self._step

    def step(self, closure=None):  # replaced per instance in __init__
        return self._step(closure)

    @torch.no_grad()
    def _step(self, closure=None):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            grads = [p.grad for p in params]
            if group["momentum"]:
                for p in params:
                    if "momentum_buffer" not in self.state[p]:
                        self.state[p]["momentum_buffer"] = torch.zeros_like(p)
                bufs = [self.state[p]["momentum_buffer"] for p in params]
                torch._foreach_mul_(bufs, group["momentum"])
                torch._foreach_add_(bufs, grads)
                grads = bufs
            torch._foreach_add_(params, grads, alpha=-group["lr"])


@dataclass(frozen=True)
class RBMConfig:
    """Options of :class:`RBM`.

    hidden: number of hidden units p.
    visible: bernoulli (0/1), spin (+-1) or gaussian (real, unit variance); auto: bernoulli for
        binary data, gaussian for continuous data.
    hidden_units: bernoulli, spin or gaussian.
    k: Gibbs steps of the negative phase (CD-k, or PCD-k with ``persistent``).
    persistent: persistent contrastive divergence: negative chains carried over between updates.
    gradient: cd (contrastive divergence, CD-k or PCD-k) or exact (the model expectation by
        enumerating the smaller binary layer: O(2^n) per update, the lectures' baseline for CD).
    chains: number of persistent chains (PCD).
    momentum: SGD momentum (Hinton's guide: 0.5 early, 0.9 later).
    init_std: standard deviation of the initial weights.
    exact_max_units: enumerate log Z when the smaller binary layer has at most this many units.
    ais_chains, ais_steps: AIS runs and intermediate distributions (Salakhutdinov & Murray: 100
        and 14,500); ``deepgen eval --k N`` sets the number of intermediate distributions.
    """

    hidden: int = 64
    visible: Literal["auto", "bernoulli", "spin", "gaussian"] = "auto"
    hidden_units: Literal["bernoulli", "spin", "gaussian"] = "bernoulli"
    k: int = 1
    persistent: bool = False
    gradient: Literal["cd", "exact"] = "cd"
    chains: int = 100
    momentum: float = 0.5
    init_std: float = 0.01
    exact_max_units: int = 20
    ais_chains: int = 100
    ais_steps: int = 1000

    def __post_init__(self):
        for name in ("hidden", "k", "chains", "ais_chains", "ais_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"RBMConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"RBMConfig.momentum must be in [0, 1), got {self.momentum}")
        if self.exact_max_units > 24:
            raise ConfigError(f"RBMConfig.exact_max_units above 24 means 2^{self.exact_max_units} states: too many")


@dataclass(frozen=True)
class RBMSampleConfig:
    """Sampling options of :class:`RBM`.

    steps: block Gibbs steps from the start state.
    start: base (independent units at the base-rate model, fitted to the training data's means)
        or uniform (binary visible units: fair coins; Gaussian: N(0, 1)).
    """

    steps: int = 1000
    start: Literal["base", "uniform"] = "base"

    def __post_init__(self):
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")


@register("rbm")
class RBM(GenerativeModel):
    """Restricted Boltzmann machine: Bernoulli, spin or Gaussian units; CD-k or PCD; exact or AIS log Z.

    Density: exact (log Z by enumeration) when the smaller binary layer has at most
    ``exact_max_units`` units, else an AIS estimate with a shared standard error. Attributes: ``W``
    (D, p), ``b`` (D,), ``c`` (p,), ``base_bias`` (the base-rate model's visible fields).
    """

    family = "energy"
    Config = RBMConfig
    SampleConfig = RBMSampleConfig
    density_summary = "exact (log Z enumerated over <= 20 binary units); else estimate (AIS log Z)"
    #: steps_per_call: updates per call of the fused :meth:`train_steps` (see :mod:`.rbm_kernel`).
    train_defaults = {"lr": 0.1, "weight_decay": 1e-4, "steps_per_call": 100}
    per_rank_buffers = ("chains",)
    #: ``--full``: Salakhutdinov & Murray's 14,500 intermediate distributions (``--k N`` sets any number).
    eval_k_full = 14_500
    #: Samples for sample-quality metrics: each costs ``steps`` (1,000) Gibbs sweeps.
    eval_samples = 1000
    loss_units = "reconstruction error per dimension"
    test_options = {"hidden": 6, "k": 2, "ais_steps": 50, "ais_chains": 16}
    test_sample_options = {"steps": 5}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        vis = cfg.visible
        if vis == "auto":
            vis = "bernoulli" if info.is_binary else "gaussian" if info.levels is None else None
        if vis is None or (vis in ("bernoulli", "spin") and not info.is_binary):
            raise DataError(
                f"rbm: binary visible units need binary data (values 0/1); {info.name} has "
                f"{info.levels} levels (binarise it with --binarize, or use continuous data with visible=gaussian)"
            )
        if vis == "gaussian" and info.levels is not None:
            raise DataError(f"rbm: Gaussian visible units model continuous data; {info.name} is discrete")
        if cfg.gradient == "exact" and not self._enumerable(vis, info.dim):
            raise ConfigError(
                f"rbm: gradient=exact enumerates the smaller binary layer, which must have at most "
                f"exact_max_units={cfg.exact_max_units} units (visible {info.dim}, hidden {cfg.hidden})"
            )
        if vis == "gaussian" and cfg.hidden_units == "gaussian":
            raise ConfigError("rbm: Gaussian visible and Gaussian hidden units have no normalisable joint")
        self.visible = vis
        d, p = info.dim, cfg.hidden
        self.W = nn.Parameter(cfg.init_std * torch.randn(d, p))
        self.b = nn.Parameter(torch.zeros(d))
        self.c = nn.Parameter(torch.zeros(p))
        self.register_buffer("base_bias", torch.zeros(d))
        self.register_buffer("chains", torch.zeros(cfg.chains if cfg.persistent else 0, d))
        self._log_z: tuple | None = None  # (key, log Z, stderr, method)

    # -- energies -----------------------------------------------------------------------------------
    def to_units(self, x: torch.Tensor) -> torch.Tensor:
        """Data (B, *shape) -> visible states (B, D): 0/1 -> +-1 for spins."""
        v = x.flatten(1).to(self.W.dtype)
        return 2 * v - 1 if self.visible == "spin" else v

    def from_units(self, v: torch.Tensor) -> torch.Tensor:
        v = (v + 1) / 2 if self.visible == "spin" else v
        return v.view(len(v), *self.info.shape)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) (B,) for visible states v (B, D): the hidden units summed out."""
        return self.free_energy_from_field(v, self.hidden_field(v))

    def hidden_free_energy(self, h: torch.Tensor) -> torch.Tensor:
        """G(h) (B,) for hidden states h (B, p): the visible units summed out."""
        field = h @ self.W.T + self.b
        return -(self_term(self.config.hidden_units, h) + h @ self.c + log_partition(self.visible, field).sum(1))

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """E(v, h) (B,)."""
        hu = self.config.hidden_units
        return -(self_term(self.visible, v) + v @ self.b + self_term(hu, h) + h @ self.c + ((v @ self.W) * h).sum(1))

    def hidden_field(self, v: torch.Tensor) -> torch.Tensor:
        """c + W^T v for each row v (B, p)."""
        return torch.addmm(self.c, v, self.W)

    def visible_field(self, h: torch.Tensor) -> torch.Tensor:
        """b + W h for each row h (B, D)."""
        return torch.addmm(self.b, h, self.W.T)

    def free_energy_from_field(self, v: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
        """F(v) given its hidden field ``c + W^T v`` (saves the matrix product when it is at hand)."""
        return -(self_term(self.visible, v) + v @ self.b + log_partition(self.config.hidden_units, field).sum(1))

    def configure_optimizers(self, cfg):
        """SGD with momentum. Weight decay (Hinton's guide: on W only, not the biases) is added to W's
        gradient in :meth:`train_step`, so the optimiser has one parameter group (SGD's per-group work
        was most of an update's time on 8x8 digits)."""
        if cfg.optimizer != "adam":
            raise ConfigError(f"rbm trains with its own momentum SGD; --optimizer {cfg.optimizer} does not apply")
        self._weight_decay = cfg.weight_decay
        return {"main": MomentumSGD(self.parameters(), lr=cfg.lr, momentum=self.config.momentum)}

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Visible biases (and the base-rate model) from the first batch's means (Hinton's guide, 8.1)."""
        v = self.to_units(x)
        mean = v.mean(0)
        if self.visible == "gaussian":
            self.base_bias.copy_(mean)
        else:
            p = ((v if self.visible == "bernoulli" else (v + 1) / 2).sum(0) + 0.5) / (len(v) + 1)
            logit = torch.log(p) - torch.log1p(-p)
            self.base_bias.copy_(logit if self.visible == "bernoulli" else logit / 2)
        self.b.copy_(self.base_bias)
        if self.chains.numel():  # persistent chains start at the data, cycled
            idx = torch.arange(len(self.chains), device=v.device) % len(v)
            self.chains.copy_(v[idx])

    def gibbs(self, v: torch.Tensor, k: int, beta: float = 1.0, generator=None, field=None) -> torch.Tensor:
        """k block-Gibbs steps v -> h -> v at inverse temperature ``beta`` of the AIS path (1: the model).
        ``field``: v's hidden field when already computed (beta = 1)."""
        hu = self.config.hidden_units
        for i in range(k):
            hf = field if i == 0 and field is not None else self.hidden_field(v)
            h = unit_sample(hu, hf if beta == 1.0 else beta * hf, generator)
            vf = self.visible_field(h)
            if beta != 1.0:
                vf = beta * vf + (1 - beta) * self.base_bias
            v = unit_sample(self.visible, vf, generator)
        return v

    def gradients(self, v0, vk, h0=None, hk=None) -> dict[str, torch.Tensor]:
        """The CD estimate of -d log p / d(W, b, c): -(E_data - E_negatives), means over each batch.
        ``h0``, ``hk``: the hidden units' conditional means, when already computed."""
        hu = self.config.hidden_units
        h0 = unit_mean(hu, self.hidden_field(v0)) if h0 is None else h0
        hk = unit_mean(hu, self.hidden_field(vk)) if hk is None else hk
        n, m = v0.shape[0], vk.shape[0]
        if n == m:  # CD, and PCD with as many chains as the batch: one op fewer per bias
            db, dc = (vk - v0).mean(0), (hk - h0).mean(0)
        else:
            db, dc = vk.mean(0) - v0.mean(0), hk.mean(0) - h0.mean(0)
        return {"W": torch.addmm(v0.T @ h0, vk.T, hk, beta=-1.0 / n, alpha=1.0 / m), "b": db, "c": dc}

    def model_statistics(self) -> dict[str, torch.Tensor]:
        """E_model[v h^T], E[v], E[h] exactly, by enumerating the smaller binary layer (float64)."""
        m = self.double_copy()
        which, n = self.enumerable_layer()
        kind = self.visible if which == "visible" else self.config.hidden_units
        states = all_states(kind, n, torch.float64, self.W.device)
        if which == "visible":
            field = m.hidden_field(states)
            p = torch.softmax(-m.free_energy_from_field(states, field), 0)
            v, h = states, unit_mean(self.config.hidden_units, field)
        else:
            p = torch.softmax(-m.hidden_free_energy(states), 0)
            v, h = unit_mean(self.visible, m.visible_field(states)), states
        dt = self.W.dtype
        return {"vh": ((v * p[:, None]).T @ h).to(dt), "v": (p @ v).to(dt), "h": (p @ h).to(dt)}

    def exact_gradients(self, v0, h0) -> dict[str, torch.Tensor]:
        """-d mean log p(v0) / d(W, b, c) with the model expectation enumerated (no sampling error)."""
        s = self.model_statistics()
        return {"W": s["vh"] - v0.T @ h0 / len(v0), "b": s["v"] - v0.mean(0), "c": s["h"] - h0.mean(0)}

    def train_step(self, x, y, ctx):
        """One CD-k (or PCD-k) update; logs the reconstruction error and the free-energy gap
        F(data) - F(negatives) (near 0 while the chains track the model; large when they lag)."""
        cfg, hu = self.config, self.config.hidden_units
        with torch.no_grad():
            v0 = self.to_units(x)
            f0 = self.hidden_field(v0)
            h0 = unit_mean(hu, f0)
            if cfg.gradient == "exact":
                grads = self.exact_gradients(v0, h0)
                vk = self.gibbs(v0, 1, field=f0)  # for the monitor only
            elif cfg.persistent:
                vk = self.gibbs(self.chains, cfg.k)
                self.chains.copy_(vk)
            else:
                vk = self.gibbs(v0, cfg.k, field=f0)
            fk = self.hidden_field(vk)
            if cfg.gradient == "cd":
                grads = self.gradients(v0, vk, h0, unit_mean(hu, fk))
            # The free-energy gap mean F(v0) - mean F(vk) from the fields at hand; its visible-bias
            # part (mean vk - mean v0) . b is the b-gradient's (exact gradients: computed afresh).
            db = grads["b"] if cfg.gradient == "cd" else vk.mean(0) - v0.mean(0)
            lp = log_partition(hu, fk).sum() / vk.shape[0] - log_partition(hu, f0).sum() / v0.shape[0]
            gap = db @ self.b + lp
            if self.visible == "gaussian":
                gap = gap + (self_term("gaussian", vk).mean() - self_term("gaussian", v0).mean())
            if getattr(self, "_weight_decay", 0.0):
                grads["W"].add_(self.W, alpha=self._weight_decay)
            for name, g in grads.items():  # summed over micro-batches (grad_accum)
                p = getattr(self, name)
                g = g / ctx.grad_accum if ctx.grad_accum > 1 else g
                p.grad = g if ctx.micro_batch == 0 or p.grad is None else p.grad + g
            rec = unit_mean(self.visible, self.visible_field(h0))
        if ctx.micro_batch == ctx.grad_accum - 1:
            ctx.apply_gradients("main")
        return {"loss": (v0 - rec).square().mean(), "free_energy_gap": gap}

    def fused_steps_unavailable(self, ctx) -> str | None:
        """Why :meth:`train_steps` cannot run this configuration (None: it can)."""
        if self.config.gradient != "cd":
            return "gradient=exact enumerates the model's states at every update"
        if ctx.world_size > 1:
            return "distributed training averages every update's gradients across processes"
        if ctx.grad_accum > 1 or ctx.grad_clip or ctx.precision != "fp32":
            return "--grad-accum, --grad-clip and --precision act on each update's gradients"
        if not isinstance(ctx.optimizers.get("main"), MomentumSGD):
            return "the fused updates implement the RBM's own momentum SGD only"
        return None

    def train_steps(self, xs, ys, ctx):
        """``len(xs)`` CD-k / PCD-k updates in one call (``--steps-per-call``): the arithmetic and
        random draws of :meth:`train_step`, without per-update Python (:mod:`.rbm_kernel`). Returns the
        last update's monitors."""
        from deepgen.models.energy.rbm_kernel import UNIT_CODES, kernel

        cfg, opt = self.config, ctx.optimizers["main"]
        group = opt.param_groups[0]
        params = [self.W, self.b, self.c]
        if ctx.lr_factors is None:
            lrs = [float(group["lr"])] * len(xs)
        else:
            lrs = [group["initial_lr"] * f for f in ctx.lr_factors]
        buffers = []
        if group["momentum"]:
            for p in params:
                if "momentum_buffer" not in opt.state[p]:
                    opt.state[p]["momentum_buffer"] = torch.zeros_like(p)
            buffers = [opt.state[p]["momentum_buffer"] for p in params]
        batches = list(self.to_units(xs.flatten(0, 1)).view(len(xs), xs.shape[1], -1).unbind(0))
        with torch.no_grad():
            chains, loss, gap = kernel()(
                self.W, self.b, self.c, batches, self.chains,
                lrs, float(group["momentum"]), buffers, float(getattr(self, "_weight_decay", 0.0)), cfg.k,
                cfg.persistent, UNIT_CODES[self.visible], UNIT_CODES[cfg.hidden_units],
            )  # fmt: skip
            if cfg.persistent:
                self.chains.copy_(chains)
        return {"loss": loss, "free_energy_gap": gap}

    # -- density ------------------------------------------------------------------------------------
    def _enumerable(self, visible: str, dim: int) -> tuple[str, int] | None:
        options = []
        if visible != "gaussian":
            options.append((dim, "visible"))
        if self.config.hidden_units != "gaussian":
            options.append((self.config.hidden, "hidden"))
        options = [o for o in options if o[0] <= self.config.exact_max_units]
        if not options:
            return None
        n, which = min(options)
        return which, n

    def enumerable_layer(self) -> tuple[str, int] | None:
        """("visible" | "hidden", units) of the smaller binary layer within ``exact_max_units``; None if neither."""
        return self._enumerable(self.visible, self.info.dim)

    @property
    def density_kind(self) -> DensityKind:
        return DensityKind.EXACT if self.enumerable_layer() else DensityKind.ESTIMATE

    def _key(self) -> tuple:
        return version_key((self.W, self.b, self.c, self.base_bias))

    @torch.no_grad()
    def exact_log_partition(self, chunk: int = 1 << 14) -> float:
        """log Z by enumerating the smaller binary layer (float64)."""
        which, n = self.enumerable_layer()
        kind = self.visible if which == "visible" else self.config.hidden_units
        states = all_states(kind, n, torch.float64, self.W.device)
        energy = self.double_copy().free_energy if which == "visible" else self.double_copy().hidden_free_energy
        parts = [torch.logsumexp(-energy(states[i : i + chunk]), 0) for i in range(0, len(states), chunk)]
        return torch.logsumexp(torch.stack(parts), 0).item()

    def double_copy(self) -> RBM:
        """This RBM in float64 (for log Z)."""
        return copy.deepcopy(self).double()

    def base_log_partition(self) -> float:
        """log Z_A of the AIS base model (W = 0, visible fields ``base_bias``, hidden fields 0)."""
        a = log_partition(self.visible, self.base_bias.double()).sum()
        return (
            a + self.config.hidden * log_partition(self.config.hidden_units, torch.zeros((), dtype=torch.float64))
        ).item()

    def ais_log_weights(self, v: torch.Tensor, beta: float) -> torch.Tensor:
        """log f_beta(v) (B,): the AIS path's unnormalised marginal of v (hidden units summed out)."""
        vis = self_term(self.visible, v) + (1 - beta) * (v @ self.base_bias) + beta * (v @ self.b)
        return vis + log_partition(self.config.hidden_units, beta * self.hidden_field(v)).sum(1)

    @torch.no_grad()
    def ais_log_partition(self, steps: int | None = None, chains: int | None = None, generator=None):
        """(log Z estimate, its standard error) by AIS from the base-rate model (module docstring)."""
        cfg = self.config
        steps, chains = steps or cfg.ais_steps, chains or cfg.ais_chains
        m = self.double_copy()
        s = torch.linspace(-4, 4, steps + 1, dtype=torch.float64)  # sigmoid schedule (Grosse et al. 2013)
        betas = ((torch.sigmoid(s) - torch.sigmoid(s[0])) / (torch.sigmoid(s[-1]) - torch.sigmoid(s[0]))).tolist()
        shape = (chains, self.info.dim)
        v = unit_sample(self.visible, m.base_bias.expand(*shape), generator)
        log_w = torch.zeros(chains, dtype=torch.float64, device=v.device)
        for i in range(1, len(betas)):
            log_w += m.ais_log_weights(v, betas[i]) - m.ais_log_weights(v, betas[i - 1])
            if i < len(betas) - 1:
                v = m.gibbs(v, 1, betas[i], generator)
        est, se = logmeanexp_with_stderr(log_w.unsqueeze(0))
        return self.base_log_partition() + est.item(), se.item()

    def prepare_likelihood(self, x=None, *, k=None, generator=None) -> None:
        """log Z for the current weights, once: enumerated, or AIS with ``k`` intermediate distributions."""
        key = self._key() + (k,)
        if self._log_z is not None and self._log_z[0] == key:
            return
        if self.enumerable_layer():
            which, n = self.enumerable_layer()
            self._log_z = (
                key,
                self.exact_log_partition(),
                None,
                f"exact (log Z enumerated over the {2**n} {which} states)",
            )
        else:
            steps = k or self.config.ais_steps
            est, se = self.ais_log_partition(steps, generator=generator)
            text = f"AIS log Z ({self.config.ais_chains} chains, {steps} distributions; s.e. {se:.3f} nats shared)"
            self._log_z = (key, est, se, text)

    def log_likelihood(self, x, *, y=None, k=None, method=None) -> LogLikelihood:
        """log p(x) = -F(x) - log Z (nats); log Z enumerated, or estimated by AIS (prepared once)."""
        self.check_method(method)
        self.check_input(x)
        self.check_labels(y, len(x), draw=False)
        if self._log_z is None or self._log_z[0][:-1] != self._key():
            self.prepare_likelihood(x, k=k)
        _, log_z, se, text = self._log_z
        with torch.no_grad():
            values = -self.free_energy(self.to_units(x)).double() - log_z
        return LogLikelihood(values.to(x.dtype), self.density_kind, text, shared_stderr=se)

    @torch.no_grad()
    def evaluate(self, x, y=None):
        """Held-out numbers: reconstruction error and mean -F(x); the NLL when log Z is exact (cheap)."""
        v = self.to_units(x)
        hu = self.config.hidden_units
        rec = unit_mean(self.visible, self.visible_field(unit_mean(hu, self.hidden_field(v))))
        out = {"reconstruction": (v - rec).pow(2).mean().item(), "neg_free_energy": -self.free_energy(v).mean().item()}
        if self.enumerable_layer():
            out.update(super().evaluate(x, y))
        return out

    # -- sampling -----------------------------------------------------------------------------------
    @classmethod
    def describe_sampling(cls, options=None) -> str:
        o = options or cls.SampleConfig()
        return f"block Gibbs, {o.steps} steps from the {o.start} start"

    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        shape = (n, self.info.dim)
        if options.start == "base":
            v = unit_sample(self.visible, self.base_bias.expand(*shape), generator)
        else:
            v = unit_sample(self.visible, self.W.new_zeros(shape), generator)
        return self.from_units(self.gibbs(v, options.steps, generator=generator)).to(self.W.dtype)
