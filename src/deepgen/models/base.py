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
  buffers lives in registered buffers, so checkpoints hold it (``per_rank_buffers`` names those that
  differ between DDP ranks).

Sampling contract:

* ``sample(n, *, generator=None, y=None, **options)`` is the public entry point. It parses
  ``options`` into the model's frozen ``SampleConfig`` dataclass (strings from the command line are
  typed by its annotations, unknown names list the valid ones), checks the labels ``y`` and calls
  ``_sample(n, options, generator=..., y=...)``, which a model implements.
  :meth:`GenerativeModel.describe_sampling` turns options into the words a report prints
  (``"DDIM, 50 steps"``).
* Labels: ``conditional = True`` models receive ``y`` in ``loss``, ``_sample``, ``log_prob`` and
  ``log_likelihood``; unconditional models given labels raise a one-line :class:`ConfigError`.
* Generation driven by an input is a declared capability, a method a model may implement:
  ``complete(x, mask)`` (fill in the unobserved part), ``translate(x)`` (map to the other domain),
  ``edit(x, strength)`` (partial noising and denoising), ``encode(x)`` / ``decode(z)`` (a latent
  space; :meth:`GenerativeModel.interpolate` and :meth:`GenerativeModel.traverse` are built on
  them). ``model.capabilities()`` lists those a model offers; callers ask, they never check a
  model's name or family.

Density contract: ``log_likelihood(x, *, y=None, k=None, method=None)`` returns a labelled
:class:`LogLikelihood`; ``likelihood_methods`` names the numbers a model can offer besides its
default (a diffusion model's bound and its ODE likelihood), and ``prepare_likelihood(data)`` runs
once before a dataset is scored (an RBM's AIS estimate of log Z), so nothing global is recomputed
per batch. Models may enable autograd inside ``_sample`` and ``log_likelihood`` (Langevin
sampling, ODE likelihoods): callers run them under ``torch.no_grad()``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from deepgen.data.base import DataInfo
from deepgen.data.transforms import snap
from deepgen.errors import ConfigError, DataError, DeepgenError, NoDensityError

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
        shared_stderr: standard error shared by every example (e.g. of an AIS estimate of log Z,
            which enters every value): it does not average out over a test set.

    Values are always detached from autograd (``.numpy()`` works on them).
    """

    values: torch.Tensor
    kind: DensityKind
    method: str
    stderr: torch.Tensor | None = None
    shared_stderr: float | None = None

    def __post_init__(self):
        self.kind = DensityKind(self.kind)
        self.values = self.values.detach()
        if self.stderr is not None:
            self.stderr = self.stderr.detach()


@dataclass(frozen=True)
class EmptyConfig:
    """For models without options."""


@dataclass(frozen=True)
class NoSampleOptions:
    """This model has no sampling options."""


#: Families a model may declare, in the order reports group them (the compare table reads it).
FAMILIES = ("baseline", "autoregressive", "flow", "vae", "gan", "energy", "diffusion", "implicit", "hybrid")

#: Input-driven generation a model may offer, with what each does (``deepgen list`` prints these).
CAPABILITIES = {
    "complete": "complete(x, mask): fill in the entries of x where mask is False",
    "translate": "translate(x): map examples to the other domain",
    "edit": "edit(x, strength): partially noise x and denoise it (strength in [0, 1])",
    "restore": "restore(ref, project, noise): sample x given an observation, kept consistent with it at every step",
    "encode": "encode(x) -> z and decode(z) -> x: a latent space, with interpolate and traverse",
}

#: Data kinds (``DataInfo.kind``): i.i.d. examples, one signal as coordinates -> values, a scene of
#: posed images, two unpaired domains.
DATA_KINDS = ("examples", "signal", "scene", "domains")


class UnsupportedError(DeepgenError):
    """A model was asked for a capability (completion, translation, editing, ...) it does not offer."""


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

    @classmethod
    def train_defaults_for(cls, info: DataInfo, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Training defaults for data ``info`` and model options ``options``: ``train_defaults``
        unless a model's best settings depend on the data (a GAN's learning rate on 2-D toys)."""
        return dict(cls.train_defaults)

    #: Whether ``loss``/``train_step`` use labels (conditional models).
    conditional: ClassVar[bool] = False
    #: Config field that makes an instance class-conditional (it then sets ``self.conditional``),
    #: for models that are conditional only on request (``-o class_conditional=true``); None: fixed.
    condition_option: ClassVar[str | None] = None
    #: DDP option: set False for models whose buffers are per-rank state (e.g. replay buffers).
    ddp_broadcast_buffers: ClassVar[bool] = True
    #: Names of registered buffers that are per-rank state (replay buffers, persistent chains): the
    #: engine neither broadcasts them from rank 0 nor lets rank 0's copy overwrite the others'.
    per_rank_buffers: ClassVar[tuple[str, ...]] = ()
    #: DDP option: True for models whose loss leaves some parameters unused in a step.
    ddp_find_unused_parameters: ClassVar[bool] = False
    #: False for models that only map inputs (CycleGAN's ``translate``): ``sample`` raises
    #: :class:`UnsupportedError`, and sample-quality evaluation does not apply.
    samples_from_noise: ClassVar[bool] = True
    #: Sampling options (a frozen dataclass with defaults); see :meth:`sample`.
    SampleConfig: ClassVar[type] = NoSampleOptions
    #: Whether the *model* defines an exact density (flows, autoregressive models), independent of
    #: whether the number reported on some data is a bound (a flow on discrete data reports the
    #: dequantisation bound of an exact continuous density).
    has_exact_density: ClassVar[bool] = False
    #: Extra names ``log_likelihood(method=...)`` accepts besides the default number.
    likelihood_methods: ClassVar[tuple[str, ...]] = ()
    #: Data kinds (see ``DATA_KINDS``) the model can be trained on.
    data_kinds: ClassVar[tuple[str, ...]] = ("examples",)
    #: Evaluation budget: Monte Carlo samples K for likelihood estimates (None: the model's number
    #: needs none), K for ``--full`` (the papers' setting), and the number of samples drawn for
    #: sample-quality metrics (None: chosen by the data).
    eval_k: ClassVar[int | None] = None
    eval_k_full: ClassVar[int | None] = None
    eval_samples: ClassVar[int | None] = None
    #: Test examples an expensive likelihood is computed on by default (a seeded random subset; None:
    #: all): a Monte Carlo one (``eval_k`` > 1), or a default number that is costly by itself (a
    #: diffusion model's bound over T terms); an explicit ``k = 1`` and ``--full`` use all of them.
    eval_examples: ClassVar[int | None] = None
    #: 2-D density maps (``plots.density_grid``): the largest grid side, and the likelihood method
    #: to draw (None: the default number). Models whose density costs many network evaluations per
    #: point (diffusion: T bound terms or an ODE solve) use a coarser grid.
    density_grid_max: ClassVar[int] = 200
    density_plot_method: ClassVar[str | None] = None
    #: Models trained in several runs (VQ-VAE: its autoencoder, then a prior over its codes): one
    #: ``(options, init_sub)`` pair per stage, in order. ``options`` are the model options that select
    #: the stage; ``init_sub`` names the submodule the stage copies from the previous stage's run
    #: (``--init-from PREVIOUS:init_sub``; None for the first). ``deepgen compare`` trains every
    #: stage with the same step budget and reports the last; empty: one stage.
    training_stages: ClassVar[tuple[tuple[dict[str, Any], str | None], ...]] = ()
    #: What ``loss`` is measured in, for the axis of loss curves.
    loss_units: ClassVar[str] = "nats per dimension"
    #: Small options for the test harness (tests/models): every registered model is trained,
    #: sampled, scored and reloaded with these, so they must keep it fast on 2 cores.
    test_options: ClassVar[dict[str, Any]] = {}
    #: Cheap sampling options for the test harness (e.g. ``{"steps": 2}``).
    test_sample_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, info: DataInfo, config: Any = None):
        super().__init__()
        self.info = info
        self.config = config if config is not None else self.Config()
        if not isinstance(self.config, self.Config):
            raise TypeError(f"{type(self).__name__} expects a {self.Config.__name__}, got {type(config).__name__}")
        kind = getattr(info, "kind", "examples")
        if kind not in self.data_kinds:
            raise DataError(f"{self.name} models {' or '.join(self.data_kinds)} data; {info.name} is {kind} data")
        if self.conditional and not info.num_classes:
            raise DataError(f"{self.name} is conditional and needs labelled data; {info.name} has no labels")

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters (or buffers); CPU for a model with neither."""
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

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

    def train_steps(self, xs: torch.Tensor, ys: torch.Tensor | None, ctx: StepContext) -> dict[str, Any]:
        """Several optimisation steps in one call (``--steps-per-call``): step ``i`` on batch ``xs[i]``
        (labels ``ys[i]``); ``xs`` is (n, batch_size, *shape).

        For models whose steps are so small that per-step Python dominates (the RBM's fused
        contrastive divergence); returns the metrics of the last step. Models without it take one
        step per call, and the engine refuses ``steps_per_call`` > 1 for them.
        """
        raise NotImplementedError(f"{type(self).__name__} takes one step per call")

    def fused_steps_unavailable(self, ctx: StepContext) -> str | None:
        """Why :meth:`train_steps` cannot run this training configuration, or None when it can."""
        return f"{self.name} takes one step per call"

    def configure_optimizers(self, cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        """Named optimisers. Default: one over all parameters (``cfg.optimizer``), called ``"main"``."""
        return {"main": build_optimizer(self.parameters(), cfg)}

    def initialize(self, x: torch.Tensor) -> None:
        """Data-dependent initialisation, called once with the first batch of a fresh run."""

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, float]:
        """Held-out metrics for the trainer's periodic evaluation (means over the batch).

        Normalised densities give ``nll`` (nats; raw units for continuous data) and ``bpd``
        (discrete data); an unnormalised one gives ``neg_energy``, the mean of -E(x), which is
        comparable between steps of one run only up to the unknown, changing log Z.
        """
        out: dict[str, float] = {}
        y = y if self.conditional else None
        if self.density_kind == DensityKind.UNNORMALISED:
            out["neg_energy"] = self.log_likelihood(x, y=y).values.double().mean().item()
        elif self.density_kind != DensityKind.NONE:
            ll = self.log_likelihood(x, y=y)
            nll = -ll.values.double().mean().item()
            if self.info.is_discrete:
                from deepgen.metrics.likelihood import bits_per_dim

                out["bpd"] = bits_per_dim(nll, self.info.dim)
            else:
                nll += self.info.log_scale  # raw data units, as deepgen eval/score report
            out["nll"] = nll
        return out

    # -- sampling ----------------------------------------------------------------------------------
    def sample(
        self, n: int, *, generator: torch.Generator | None = None, y: torch.Tensor | None = None, **options
    ) -> torch.Tensor:
        """Draw ``n`` samples, shape (n, *info.shape), in the data's space (on its lattice if discrete).

        Args:
            n: number of samples.
            generator: all randomness comes from it (on the model's device), so a seed reproduces.
            y: (n,) integer labels for a conditional model; None draws classes in turn
                (0, 1, ..., C-1, 0, ...). An unconditional model given labels raises ConfigError.
            options: the model's sampling options (``SampleConfig`` fields), as values or strings.

        Returns detached samples (no autograd history), whatever the sampler did inside.
        """
        opts = self.sample_options(**options)
        y = self.check_labels(y, n)
        return self._sample(n, opts, generator=generator, y=y).detach()

    def _sample(self, n: int, options: Any, *, generator: torch.Generator | None, y: torch.Tensor | None):
        """The model's sampler, given parsed ``options`` (a ``SampleConfig``) and checked labels."""
        raise NotImplementedError(f"{type(self).__name__} implements no sampler")

    @classmethod
    def sample_options(cls, **options) -> Any:
        """Parse and validate sampling options into ``SampleConfig`` (ConfigError names valid ones)."""
        if isinstance(options.get("options"), cls.SampleConfig) and len(options) == 1:
            return options["options"]
        from deepgen.config import from_dict

        return from_dict(cls.SampleConfig, {k.replace("-", "_"): v for k, v in options.items()})

    @classmethod
    def describe_sampling(cls, options: Any = None) -> str:
        """Words for reports: the options that differ from the defaults, e.g. ``"temperature=0.7"``.

        Models override this to name their sampler (``"DDIM, 50 steps"``); "" means the defaults
        of a model without options.
        """
        from deepgen.config import to_dict

        if options is None or not dataclasses.fields(cls.SampleConfig):
            return ""
        default = to_dict(cls.SampleConfig())
        return ", ".join(f"{k}={v}" for k, v in to_dict(options).items() if default.get(k) != v)

    def check_labels(self, y: torch.Tensor | None, n: int, *, draw: bool = True) -> torch.Tensor | None:
        """Labels for ``n`` examples on the model's device, checked; None for unconditional models.

        A conditional model without labels gets classes in turn when ``draw`` (sampling), and a
        DataError otherwise (a density of x given y needs y).
        """
        if not self.conditional:
            if y is not None:
                raise ConfigError(f"{self.name} is unconditional: it takes no labels (drop --label/--labels)")
            return None
        c = self.info.num_classes
        if y is None:
            if not draw:
                raise DataError(f"{self.name} is conditional: pass the labels y of the examples")
            return torch.arange(n, device=self.device) % c
        y = torch.as_tensor(y, device=self.device)
        if y.dim() == 0:
            y = y.expand(n)
        if y.shape != (n,) or y.dtype.is_floating_point:
            raise DataError(f"{self.name}: labels must be {n} integers, got shape {tuple(y.shape)} {y.dtype}")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= c):
            raise DataError(f"{self.name}: labels must lie in 0..{c - 1}, got {int(y.min())}..{int(y.max())}")
        return y.long()

    # -- input-driven generation (declared capabilities) -------------------------------------------
    @classmethod
    def capabilities(cls) -> list[str]:
        """The input-driven generation methods (``CAPABILITIES``) this model implements."""
        return [c for c in CAPABILITIES if getattr(cls, c) is not getattr(GenerativeModel, c)]

    @classmethod
    def supports(cls, capability: str) -> bool:
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}; known: {', '.join(CAPABILITIES)}")
        return capability in cls.capabilities()

    def _unsupported(self, capability: str) -> UnsupportedError:
        from deepgen.registry import model_names_with

        others = model_names_with(capability)
        hint = f"; models that offer it: {', '.join(others)}" if others else "; no registered model offers it yet"
        return UnsupportedError(f"{self.name} does not offer {capability}{hint}")

    def complete(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        y: torch.Tensor | None = None,
        **options,
    ) -> torch.Tensor:
        """Fill in ``x`` where ``mask`` is False (mask: bool, same shape as x; True = observed).

        Returns (B, *shape) samples from p(x_unobserved | x_observed) with the observed entries
        unchanged (autoregressive models sample in their ordering; others may approximate).
        """
        raise self._unsupported("complete")

    def translate(self, x: torch.Tensor, *, generator: torch.Generator | None = None, **options) -> torch.Tensor:
        """Map examples of one domain to the other (two-domain models such as CycleGAN)."""
        raise self._unsupported("translate")

    def edit(
        self,
        x: torch.Tensor,
        strength: float,
        *,
        generator: torch.Generator | None = None,
        y: torch.Tensor | None = None,
        **options,
    ) -> torch.Tensor:
        """Partially noise ``x`` (``strength`` in [0, 1]: 0 returns x, 1 samples afresh) and denoise it."""
        raise self._unsupported("edit")

    def restore(
        self,
        ref: torch.Tensor,
        project=None,
        *,
        noise: float = 0.0,
        strength: float = 1.0,
        resample: int = 1,
        generator: torch.Generator | None = None,
        y: torch.Tensor | None = None,
        **options,
    ) -> torch.Tensor:
        """Samples (B, *shape) given an observation, consistent with it at every step of the sampler.

        ``ref`` (B, *shape): an example that agrees with the observation (e.g. the observed pixels
        with anything elsewhere). ``project(x, r)``: the nearest x' to x that agrees with r wherever the
        observation constrains x (it must commute with the same affine map applied to every entry, as
        pasting pixels and matching block averages do); None when the observation pins nothing down
        exactly. ``noise``: the std of Gaussian noise already in ``ref`` (data units), 0 if none.
        ``strength``: where in the noise schedule sampling starts (1: from pure noise). ``resample``:
        how many times each step is taken, re-noised in between (RePaint), where the sampler allows.
        """
        raise self._unsupported("restore")

    # -- latent space (the "encode" capability) -----------------------------------------------------
    #: What a model's latent coordinates are, for help and plot titles (e.g. "posterior mean of z").
    latent_description: ClassVar[str] = ""

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Data (B, *info.shape) -> deterministic latent codes (B, *latent): a flow's ``f(x)``, a VAE's
        posterior mean. The latent space is one where straight lines and the prior's scale mean
        something, so :meth:`interpolate` and :meth:`traverse` work on it unchanged."""
        raise self._unsupported("encode")

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Latent codes (B, *latent) -> data (B, *info.shape) on the data's support (a VAE decodes to
        its likelihood's mean E[x|z]). Differentiable in z where the model allows it (inverse
        problems fit latents through it); call it under ``torch.no_grad()`` for values alone."""
        raise self._unsupported("encode")

    @torch.no_grad()
    def interpolate(
        self, x0: torch.Tensor, x1: torch.Tensor, steps: int = 8, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Decode ``steps`` points on the line between the latents of ``x0`` and ``x1`` (B, *shape) each.

        Returns (B, steps, *info.shape); the first and last columns are the reconstructions of ``x0``
        and ``x1``. Linear in latent space, as in Glow's figures (Kingma & Dhariwal 2018).
        """
        if steps < 2:
            raise ConfigError(f"interpolate needs steps >= 2, got {steps}")
        z0, z1 = self.encode(x0, y), self.encode(x1, y)
        t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device)
        zs = torch.stack([(1 - ti) * z0 + ti * z1 for ti in t], 1)  # (B, steps, *latent)
        yy = None if y is None else y.repeat_interleave(steps)
        out = self.decode(zs.flatten(0, 1), yy)
        return out.view(len(x0), steps, *out.shape[1:])

    @torch.no_grad()
    def traverse(
        self,
        x: torch.Tensor,
        dims: list[int] | None = None,
        steps: int = 9,
        span: float = 3.0,
        y: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[int]]:
        """Latent traversal of one example (Higgins et al. 2017, beta-VAE's figures).

        Encodes ``x`` (1, *shape), then for each latent coordinate in ``dims`` sets that coordinate
        to ``steps`` values evenly spaced in ``[-span, span]`` (the prior's standard deviations; the
        other coordinates keep their encoded values) and decodes. ``dims`` None takes the 8 most
        active coordinates: those whose encodings vary most over ``x`` when ``x`` holds several
        examples (the first is traversed), else the first 8. Returns ``(grid, dims)`` with grid
        (len(dims), steps, *info.shape).
        """
        if steps < 2:
            raise ConfigError(f"traverse needs steps >= 2, got {steps}")
        if span <= 0:
            raise ConfigError(f"traverse needs span > 0, got {span}")
        z = self.encode(x, y).flatten(1)  # (B, L)
        n_lat = z.shape[1]
        if dims is None:
            order = z.var(0).argsort(descending=True) if len(z) > 1 else torch.arange(n_lat)
            dims = [int(d) for d in order[: min(8, n_lat)]]
        bad = [d for d in dims if not 0 <= d < n_lat]
        if bad:
            raise ConfigError(f"latent dimensions {bad} out of range: {self.name}'s latent has {n_lat}")
        values = torch.linspace(-span, span, steps, dtype=z.dtype, device=z.device)
        zs = z[:1].repeat(len(dims) * steps, 1).view(len(dims), steps, n_lat)
        for i, d in enumerate(dims):
            zs[i, :, d] = values
        latent_shape = self.encode(x[:1], None if y is None else y[:1]).shape[1:]
        yy = None if y is None else y[:1].repeat(len(dims) * steps)
        out = self.decode(zs.view(-1, *latent_shape), yy)
        return out.view(len(dims), steps, *out.shape[1:]), dims

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

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Exact log p(x) (or log p(x | y)) in nats, shape (B,). Only models with exact densities implement it."""
        raise self._no_density("exact log-likelihood")

    def log_likelihood(
        self, x: torch.Tensor, *, y: torch.Tensor | None = None, k: int | None = None, method: str | None = None
    ) -> LogLikelihood:
        """The log-likelihood this model offers for ``x`` (given labels ``y``), labelled.

        ``k``: number of Monte Carlo samples for models whose number is a bound or estimate
        (ignored by exact models). ``method``: one of ``likelihood_methods`` for a number other
        than the default. Values are detached; an unnormalised model returns -E(x) labelled
        ``unnormalised``.
        """
        self.check_method(method)
        if self.density_kind == DensityKind.EXACT:
            y = self.check_labels(y, len(x), draw=False)
            return LogLikelihood(self.log_prob(x, y), DensityKind.EXACT, "exact")
        raise self._no_density("log-likelihood")

    def check_method(self, method: str | None) -> None:
        """Raise ConfigError for a ``method`` this model does not offer."""
        if method is not None and method not in self.likelihood_methods:
            valid = ", ".join(self.likelihood_methods) or "none besides the default"
            raise ConfigError(f"{self.name} has no likelihood method {method!r}; methods: {valid}")

    def prepare_likelihood(self, x: torch.Tensor | None = None, *, k: int | None = None, generator=None) -> None:
        """Compute what every example's log-likelihood shares, once per evaluation.

        Called by ``deepgen.evaluate`` (and ``deepgen score``) before scoring a dataset. An RBM
        estimates log Z by AIS here; most models need nothing. ``x`` is (a sample of) the data to
        be scored, ``k`` the evaluation budget.
        """

    def check_input(self, x: torch.Tensor) -> None:
        """Raise DataError when ``x`` is not a batch of this model's data."""
        if tuple(x.shape[1:]) != tuple(self.info.shape):
            raise DataError(
                f"{self.name}: expected examples of shape {tuple(self.info.shape)}, got {tuple(x.shape[1:])}"
            )


def build_optimizer(params, cfg: TrainConfig, lr: float | None = None, betas=None) -> torch.optim.Optimizer:
    """The trainer config's optimiser (``cfg.optimizer``) with its learning rate, betas and weight decay.

    ``adam`` (the default) and ``adamw`` run in torch's fused kernel: ``fused=True`` (one kernel for
    all tensors' updates) takes a RealNVP step on 2-D toy data from 4.5 to 3.6 ms on one CPU thread
    (benchmarks/flow_speed.py); ``foreach=True`` is used where the fused kernel does not apply (a
    parameter that is not a floating-point tensor on a CPU or CUDA device). ``adam``'s weight decay is
    the coupled L2 term (added to the gradient), ``adamw``'s the decoupled one (Loshchilov and Hutter
    2019). ``adagrad`` (Duchi et al. 2011) is the optimiser of the MADE authors' MNIST runs; its
    update is invariant to the scale of the loss, so the per-dimension losses deepgen minimises
    take the same learning rate as the per-example sums of the papers. ``betas`` are ignored by it.
    """
    params = list(params)
    tensors = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
    fused = all(t.is_floating_point() and t.device.type in ("cpu", "cuda") for t in tensors)
    kernel = {"fused": True} if fused else {"foreach": True}
    lr = cfg.lr if lr is None else lr
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=cfg.weight_decay, foreach=True)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=lr, betas=tuple(betas or cfg.betas), weight_decay=cfg.weight_decay, **kernel)


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
