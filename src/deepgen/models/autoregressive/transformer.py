"""An ImageGPT-style autoregressive transformer over pixels (Chen et al. 2020, "Generative
Pretraining from Pixels", ICML; the decoder of Vaswani et al. 2017, arXiv:1706.03762).

Every pixel value is a token: on data with L levels, ``x`` in {0, 1/(L-1), ..., 1} becomes
``k = round(x * (L - 1))`` in 0..L-1. An example (C, H, W) is flattened row-major
(``x.flatten(1)``: channel by channel, each in raster order) into D tokens, and a decoder-only
causal transformer (:class:`deepgen.nn.CausalTransformer`: pre-LayerNorm blocks, learned positions,
a start token) gives every factor of the chain rule in one pass::

    log p(x) = sum_{i=1}^{D} log softmax(logits_i)[k_i],   logits_i = f(start, k_1, ..., k_{i-1})

an exact log probability mass. Sampling and completion are sequential, one position per step;
with the key/value cache (the default) a step embeds one new position and attends its query over
the keys and values cached for the earlier ones, instead of a forward pass over the whole prefix
(``benchmarks/ar_transformer_cache.py`` times both).

Class conditioning: the option ``class_conditional`` replaces the learned start token by a class
embedding, so that every pixel, the first included, is predicted given the label y: the model is
p(x | y). ``GenerativeModel.conditional`` is a class attribute that the trainer, the evaluation and
``check_labels`` read from the *instance* (``model.conditional``), so this model sets it per
instance from its config rather than registering a second name: one class, one set of options, and
a checkpoint rebuilds the same kind of model from its config. (``deepgen list`` reads the class
attribute ``condition_option`` and lists the model as class-conditional on request.)

>>> from deepgen.data import DataInfo
>>> m = ARTransformer(DataInfo("toy", (6,), 2), ARTransformerConfig(d_model=16, n_layers=1, n_heads=2))
>>> m.log_prob(torch.zeros(3, 6)).shape, m.sample(2).shape
(torch.Size([3]), torch.Size([2, 6]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from deepgen.config import check_positive
from deepgen.errors import ConfigError, DataError
from deepgen.models.base import DensityKind, GenerativeModel
from deepgen.nn import CausalTransformer
from deepgen.registry import register


@dataclass(frozen=True)
class ARTransformerConfig:
    """Options of :class:`ARTransformer`.

    d_model: width of the transformer's residual stream.
    n_layers: number of transformer blocks.
    n_heads: attention heads per block (must divide d_model).
    dropout: dropout on attention weights and residual branches while training (0 = none).
    class_conditional: model p(x | y) with a class embedding as the start token (needs labelled data).
    """

    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    dropout: float = 0.0
    class_conditional: bool = False

    def __post_init__(self):
        check_positive(self, "d_model", "n_layers", "n_heads")
        if self.d_model % self.n_heads:
            raise ConfigError(f"ar-transformer: n_heads {self.n_heads} must divide d_model {self.d_model}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"ar-transformer: dropout must lie in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class ARTransformerSampling:
    """Sampling options of :class:`ARTransformer`.

    temperature: each conditional's logits are divided by it (below 1 favours likely values; 0 takes
        the most likely value, greedy decoding); 1 samples the model.
    cache: decode through the key/value cache, one position per step; false recomputes a forward
        pass over the prefix at every position (the same draws, much slower: for benchmarks and tests).
    """

    temperature: float = 1.0
    cache: bool = True

    def __post_init__(self):
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise ConfigError(f"temperature must be a finite number >= 0, got {self.temperature}")


@register("ar-transformer")
class ARTransformer(GenerativeModel):
    """ImageGPT-style causal transformer over pixel tokens (Chen et al. 2020): exact log p(x) (or p(x | y)).

    Shapes: ``x`` (B, *info.shape) on the lattice of ``info.levels`` values, flattened to D tokens
    row-major; ``log_prob`` (B,) nats (a log probability mass); ``logits(x)`` (B, D, L) of every
    conditional; ``sample(n)`` (n, *shape). ``complete(x, mask)`` fills the entries where ``mask``
    is False in raster order. Discrete data only (a DataError otherwise).

    With ``class_conditional`` the instance is conditional (``model.conditional`` is True): labels
    go to ``loss``, ``log_prob``, ``sample`` and ``complete``.

    >>> from deepgen.data import DataInfo
    >>> info = DataInfo("digits", (1, 8, 8), 17, num_classes=10)
    >>> m = ARTransformer(info, ARTransformerConfig(d_model=16, n_layers=1, n_heads=2, class_conditional=True))
    >>> m.conditional, m.logits(torch.zeros(5, 1, 8, 8), torch.arange(5)).shape
    (True, torch.Size([5, 64, 17]))
    >>> m.sample(3, y=torch.tensor([7, 7, 7]), generator=torch.Generator().manual_seed(0)).shape
    torch.Size([3, 1, 8, 8])
    """

    family = "autoregressive"
    Config = ARTransformerConfig
    SampleConfig = ARTransformerSampling
    condition_option = "class_conditional"
    #: D sequential cached decoding steps per batch of samples: a comparison draws at most this many
    eval_samples = 2000
    density_summary = "exact (chain rule over pixel tokens)"
    has_exact_density = True
    data_kinds = ("examples",)
    test_options = {"d_model": 16, "n_layers": 1, "n_heads": 2, "class_conditional": True}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        if not info.is_discrete:
            raise DataError(
                f"{self.name}: pixel tokens need discrete data with a known number of levels, but {info.name} is "
                "continuous; pass --levels L for a file of integers 0..L-1, or use a model with a continuous likelihood"
            )
        if cfg.class_conditional:
            if not info.num_classes:
                raise DataError(f"{self.name}: class_conditional needs labelled data; {info.name} has no labels")
            self.conditional = True  # per instance: see the module docstring
        self.net = CausalTransformer(
            info.levels,
            info.dim,
            cfg.d_model,
            cfg.n_layers,
            cfg.n_heads,
            num_classes=info.num_classes if cfg.class_conditional else None,
            dropout=cfg.dropout,
        )

    @property
    def density_kind(self) -> DensityKind:
        return DensityKind.EXACT

    # -- tokens -----------------------------------------------------------------------------------
    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *shape) data on the lattice -> (B, D) int64 tokens ``round(x * (L - 1))``, row-major."""
        return torch.round(x.flatten(1) * (self.info.levels - 1)).long()

    def from_tokens(self, k: torch.Tensor) -> torch.Tensor:
        """(B, D) tokens -> (B, *shape) data ``k / (L - 1)`` in the parameters' dtype."""
        dtype = self.net.head.weight.dtype
        return (k.to(dtype) / (self.info.levels - 1)).view(len(k), *self.info.shape)

    def logits(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D, L) logits of p(k_i | k_<i, y), all positions in one pass."""
        self.check_input(x)
        y = self.check_labels(y, len(x), draw=False)
        return self.net(self.tokens(x), y)

    # -- densities ---------------------------------------------------------------------------------
    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Exact log p(x) (or log p(x | y)) (B,) in nats: the sum of the D log-softmaxes at the tokens."""
        self.check_input(x)
        y = self.check_labels(y, len(x), draw=False)
        return self.net.log_prob(self.tokens(x), y)

    def loss(self, x, y=None):
        """Negative log-likelihood per dimension (teacher forcing: one pass for all positions)."""
        nll = -self.log_prob(x, y).mean()
        return {"loss": nll / self.info.dim, "nll": nll.detach()}

    # -- sampling and completion -------------------------------------------------------------------
    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        k = torch.zeros(n, self.info.dim, dtype=torch.long, device=self.device)
        free = torch.ones_like(k, dtype=torch.bool)
        k = self.net.fill(k, free, y=y, temperature=options.temperature, generator=generator, cache=options.cache)
        return self.from_tokens(k)

    @torch.no_grad()
    def complete(self, x, mask, *, generator=None, y=None, **options):
        """Fill ``x`` (B, *shape) where ``mask`` (bool, broadcast to x; True = observed) is False.

        Each unobserved pixel is drawn from p(x_i | x_<i, y) in raster order given everything before
        it, observed values and those already filled (through the cache, observed tokens enter like
        generated ones). This is the exact conditional p(x_unobserved | x_observed, y) when every
        observed pixel precedes every unobserved one (e.g. the bottom half given the top half);
        otherwise observed pixels later in the order are ignored when filling earlier ones (an
        approximation). Observed entries are returned unchanged in every case. A conditional model
        needs the labels ``y``.
        """
        opts = self.sample_options(**options)
        y = self.check_labels(y, len(x), draw=False)
        self.check_input(x)
        observed = torch.as_tensor(mask, device=x.device).bool().expand_as(x).flatten(1)
        k = torch.where(observed, self.tokens(x), torch.zeros((), dtype=torch.long, device=x.device))
        k = self.net.fill(k, ~observed, y=y, temperature=opts.temperature, generator=generator, cache=opts.cache)
        return torch.where(observed, x.flatten(1), self.from_tokens(k).flatten(1).to(x.dtype)).view_as(x)

    def extra_repr(self) -> str:
        c = self.config
        cond = ", class-conditional" if c.class_conditional else ""
        return f"{super().extra_repr()}, d_model={c.d_model}, layers={c.n_layers}, heads={c.n_heads}{cond}"
