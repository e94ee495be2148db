"""The model protocol every family implements.

A model is an ``nn.Module`` built from a :class:`~deepgen.data.DataInfo` and a frozen config
dataclass. It can always be **sampled** and says what its **density number** is:

================  =======================================================================
``exact``         log p(x) by change of variables or the chain rule (flows, autoregressive)
``lower bound``   the ELBO of a latent-variable model, or one-sample dequantisation
``estimate``      importance sampling (IWAE-style, K samples) or AIS, with a standard error
``unnormalised``  -E(x) of an energy-based model (no partition function)
``none``          no density at all (GANs: log D(x) is not log p(x))
================  =======================================================================

Training contract (read by :class:`deepgen.train.Trainer`, which never subclasses a model):

* ``loss(x, y=None) -> dict`` with key ``"loss"`` (a scalar tensor) plus anything to log. The
  default :meth:`GenerativeModel.train_step` minimises it with one optimiser.
* Models with several optimisers or without autograd (GANs, RBMs) override
  ``train_step(x, y, ctx)`` and call ``ctx.step(loss, "name")`` / ``ctx.next_batch()``.
* ``configure_optimizers(cfg)`` returns named optimisers; ``initialize(x)`` runs once on the first
  batch of a fresh run (data-dependent init such as actnorm); persistent state such as MCMC replay
  buffers lives in registered buffers, so checkpoints hold it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from deepgen.data.base import DataInfo
from deepgen.data.transforms import dequantize, quantize, snap
from deepgen.errors import DataError, NoDensityError

if TYPE_CHECKING:
    from deepgen.train.engine import StepContext, TrainConfig


class DensityKind(str, Enum):
    """What a density number means. The string value is what reports print."""

    EXACT = "exact"
    BOUND = "lower bound"
    ESTIMATE = "estimate"
    UNNORMALISED = "unnormalised"
    NONE = "none"

    def __str__(self) -> str:
        return self.value


@dataclass
class LogLikelihood:
    """Per-example log-likelihoods in nats, with what they are.

    Attributes:
        values: (B,) log p(x) (or its bound/estimate) in nats; for discrete data a log probability
            mass, for continuous data a log density in the model's data space.
        kind: exact / lower bound / estimate / unnormalised.
        method: how it was computed, e.g. ``"ELBO"``, ``"importance sampling, K=100"``.
        stderr: (B,) standard error of each estimate, when it is a Monte Carlo estimate.
    """

    values: torch.Tensor
    kind: DensityKind
    method: str
    stderr: torch.Tensor | None = None


@dataclass(frozen=True)
class EmptyConfig:
    """For models without options."""


class GenerativeModel(nn.Module):
    """Base class: sampling, labelled densities and the training hooks (see module docstring).

    Subclasses set ``family``, ``Config`` and ``density_summary`` and are registered with
    ``@register("name")``. Their ``__init__(info, config)`` must call ``super().__init__(info, config)``.
    """

    name: ClassVar[str] = "?"
    family: ClassVar[str] = "?"
    Config: ClassVar[type] = EmptyConfig
    #: Short description of the density kinds this model offers, for ``deepgen list``.
    density_summary: ClassVar[str] = "none"
    #: Training defaults that suit the model (merged under explicit user settings).
    train_defaults: ClassVar[dict[str, Any]] = {}
    #: Whether ``loss``/``train_step`` use labels (conditional models).
    conditional: ClassVar[bool] = False
    #: DDP option: set False for models whose buffers are per-rank state (e.g. replay buffers).
    ddp_broadcast_buffers: ClassVar[bool] = True

    def __init__(self, info: DataInfo, config: Any = None):
        super().__init__()
        self.info = info
        self.config = config if config is not None else self.Config()
        if not isinstance(self.config, self.Config):
            raise TypeError(f"{type(self).__name__} expects a {self.Config.__name__}, got {type(config).__name__}")

    # -- description ----------------------------------------------------------------------------
    @property
    def density_kind(self) -> DensityKind:
        """Kind of the number :meth:`log_likelihood` returns by default for this model and data."""
        return DensityKind.NONE

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return f"data={self.info.describe()}"

    # -- training hooks ---------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``forward`` is the loss, so that DistributedDataParallel can wrap the model."""
        return self.loss(x, y)

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Training objective for batch ``x``: a dict whose ``"loss"`` is minimised."""
        raise NotImplementedError(f"{type(self).__name__} trains through train_step, not loss")

    def train_step(self, x: torch.Tensor, y: torch.Tensor | None, ctx: StepContext) -> dict[str, Any]:
        """One optimisation step. Default: minimise :meth:`loss` with the ``"main"`` optimiser."""
        out = ctx.forward(x, y)
        ctx.step(out["loss"], "main")
        return out

    def configure_optimizers(self, cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        """Named optimisers. Default: one Adam over all parameters, called ``"main"``."""
        return {"main": adam(self.parameters(), cfg)}

    def initialize(self, x: torch.Tensor) -> None:
        """Data-dependent initialisation, called once with the first batch of a fresh run."""

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, float]:
        """Held-out metrics for the trainer's periodic evaluation (means over the batch)."""
        out: dict[str, float] = {}
        if self.density_kind not in (DensityKind.NONE, DensityKind.UNNORMALISED):
            ll = self.log_likelihood(x)
            nll = -ll.values.double().mean().item()
            if self.info.is_discrete:
                out["bpd"] = nll / (self.info.dim * math.log(2))
            else:
                nll += self.info.log_scale  # raw data units, as deepgen eval/score report
            out["nll"] = nll
        return out

    # -- sampling ----------------------------------------------------------------------------------
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` samples, shape (n, *info.shape), in the data's space (on its lattice if discrete)."""
        raise NotImplementedError

    def to_data_space(self, x: torch.Tensor) -> torch.Tensor:
        """Clamp/snap raw network outputs onto the data's support (lattice for discrete data)."""
        if self.info.is_discrete:
            return snap(x, self.info.levels)
        return x

    # -- densities ---------------------------------------------------------------------------------
    def _no_density(self, what: str) -> NoDensityError:
        return NoDensityError(f"{self.name} ({self.family}) has no {what}: {self.why_no_density()}")

    def why_no_density(self) -> str:
        """One sentence saying why this model has no (exact) density."""
        return f"its density kind is {self.density_kind}"

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) in nats, shape (B,). Only models with exact densities implement it."""
        raise self._no_density("exact log-likelihood")

    def log_likelihood(self, x: torch.Tensor, *, k: int | None = None) -> LogLikelihood:
        """The best log-likelihood this model offers for ``x``, labelled.

        ``k``: number of Monte Carlo samples for models whose number is a bound or estimate
        (ignored by exact models).
        """
        if self.density_kind == DensityKind.EXACT:
            return LogLikelihood(self.log_prob(x), DensityKind.EXACT, "exact")
        raise self._no_density("log-likelihood")

    def check_input(self, x: torch.Tensor) -> None:
        """Raise DataError when ``x`` is not a batch of this model's data."""
        if tuple(x.shape[1:]) != tuple(self.info.shape):
            raise DataError(
                f"{self.name}: expected examples of shape {tuple(self.info.shape)}, got {tuple(x.shape[1:])}"
            )


class ContinuousDensityModel(GenerativeModel):
    """A model with an exact density on continuous data (flows, Gaussian baselines, ...).

    Subclasses implement :meth:`log_density` for points in the model's continuous space. On
    discrete data the model sees dequantised points ``y = (k + u) / L`` and :meth:`log_prob` returns
    the one-sample dequantisation bound ``log p(y) - D log L`` (a lower bound on ``log P(k)`` in
    expectation); :meth:`log_likelihood` with ``k > 1`` averages ``k`` dequantisations inside the
    log (importance-weighted, a tighter bound that converges to ``log P(k)``).
    """

    density_summary = "exact (dequantisation bound on discrete data)"

    @property
    def density_kind(self) -> DensityKind:
        return DensityKind.BOUND if self.info.is_discrete else DensityKind.EXACT

    def log_density(self, y: torch.Tensor) -> torch.Tensor:
        """log p(y) in nats, (B,), for y in the continuous model space."""
        raise NotImplementedError

    def to_continuous(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """Data -> continuous model space: ``(y, log_det)``; dequantises discrete data."""
        if self.info.is_discrete:
            return dequantize(x, self.info.levels, generator)
        return x, torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)

    def from_continuous(self, y: torch.Tensor) -> torch.Tensor:
        """Continuous model space -> data space (floor onto the lattice for discrete data)."""
        return quantize(y, self.info.levels) if self.info.is_discrete else y

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        y, log_det = self.to_continuous(x)
        return self.log_density(y) + log_det

    def loss(self, x, y=None):
        lp = self.log_prob(x)
        nll = -lp.mean()
        return {"loss": nll / self.info.dim, "nll": nll.detach()}

    def log_likelihood(self, x: torch.Tensor, *, k: int | None = None) -> LogLikelihood:
        if not self.info.is_discrete:
            return LogLikelihood(self.log_prob(x), DensityKind.EXACT, "exact")
        k = k or 1
        if k == 1:
            return LogLikelihood(self.log_prob(x), DensityKind.BOUND, "uniform dequantisation, 1 sample")
        from deepgen.metrics.likelihood import logmeanexp_with_stderr

        lw = torch.stack([self.log_prob(x) for _ in range(k)], 1)
        est, se = logmeanexp_with_stderr(lw)
        return LogLikelihood(est, DensityKind.ESTIMATE, f"importance-weighted dequantisation, K={k}", se)


class LatentVariableModel(GenerativeModel):
    """A model p(x) = integral p(x|z) p(z) dz trained with an amortised posterior q(z|x).

    Subclasses implement :meth:`log_importance_weights`, returning ``log p(x, z_k) - log q(z_k|x)``
    for ``k`` posterior samples; the ELBO is their mean, and the importance-sampled estimate
    ``log (1/K) sum_k w_k`` (Burda et al., 2016, arXiv:1509.00519) converges to log p(x) as K grows.
    """

    density_summary = "lower bound (ELBO); estimate (importance sampling, K samples)"

    @property
    def density_kind(self) -> DensityKind:
        return DensityKind.BOUND

    def why_no_density(self) -> str:
        return "the marginal p(x) is an intractable integral; use the ELBO (bound) or importance sampling (estimate)"

    def log_importance_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """(B, k) log-weights ``log p(x, z) - log q(z|x)`` with ``z ~ q(z|x)``."""
        raise NotImplementedError

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        """Evidence lower bound per example (B,), in nats."""
        return self.log_importance_weights(x, 1)[:, 0]

    def log_prob_estimate(self, x: torch.Tensor, k: int = 100, chunk: int = 100):
        """Importance-sampled log p(x): ``(estimate (B,), stderr (B,))``; ``k`` split into chunks."""
        from deepgen.metrics.likelihood import importance_sampled_log_likelihood

        return importance_sampled_log_likelihood(lambda m: self.log_importance_weights(x, m), k, chunk)

    def log_likelihood(self, x: torch.Tensor, *, k: int | None = None) -> LogLikelihood:
        if not k or k <= 1:
            return LogLikelihood(self.elbo(x), DensityKind.BOUND, "ELBO")
        est, se = self.log_prob_estimate(x, k)
        return LogLikelihood(est, DensityKind.ESTIMATE, f"importance sampling, K={k}", se)


def adam(params, cfg: TrainConfig, lr: float | None = None, betas=None) -> torch.optim.Adam:
    """Adam with the trainer config's learning rate, betas and weight decay.

    ``foreach=True`` (one fused call per state tensor group) is about 10% faster per step than
    torch's CPU default on small models (benchmarks/engine_overhead.py).
    """
    return torch.optim.Adam(
        params,
        lr=cfg.lr if lr is None else lr,
        betas=tuple(betas or cfg.betas),
        weight_decay=cfg.weight_decay,
        foreach=True,
    )


def require_levels(model: GenerativeModel, what: str, binary: bool = False) -> None:
    """Raise DataError when a likelihood needs discrete (or binary) data and the data are not."""
    info = model.info
    if binary and not info.is_binary:
        have = "continuous" if info.levels is None else f"{info.levels} levels"
        raise DataError(
            f"{model.name}: {what} needs binary data (values 0/1) but {info.name} has {have}; "
            "use --binarize dynamic, --levels 2 for a 0/1 file, or another likelihood"
        )
    if not binary and not info.is_discrete:
        raise DataError(
            f"{model.name}: {what} needs discrete data with a known number of levels, but {info.name} is "
            "continuous; pass --levels L for a file of integers 0..L-1, or choose a continuous likelihood"
        )


def config_fields(cls) -> list[dict]:
    """Name, type and default of each config field (for ``deepgen list --verbose``)."""
    return [{"name": f.name, "type": str(f.type), "default": f.default} for f in dataclasses.fields(cls.Config)]
