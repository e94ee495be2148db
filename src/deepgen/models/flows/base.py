"""The normalizing-flow model base: a bijector (data -> latent) over a base distribution.

``log p(x) = log p_Z(f(x)) + log|det df/dx|`` (change of variables; Rezende & Mohamed 2015,
arXiv:1505.05770; Papamakarios et al. 2021, arXiv:1912.02762). A named flow (RealNVP, Glow, MAF) is a
subclass that only builds its bijector; density, loss, sampling, temperature, dequantisation and
labels come from :class:`Flow`.

Discrete data (images): the model sees dequantised points ``(k + u) / L`` in (0, 1)
(:meth:`ContinuousDensityModel.to_continuous`) and reports the dequantisation *lower bound*.
Such points should be mapped to the real line first: :meth:`Flow.preprocess` returns RealNVP's
``Logit`` for discrete data and the identity for continuous data, and its log-det is inside the
likelihood, so bits/dim include it.

A flow only builds its bijector; a model file then registers it with ``@register("name")`` above
the class. Here :func:`deepgen.registry.temporary` registers it for one ``with`` block instead:

>>> import torch
>>> from deepgen.bijectors import Affine, Compose
>>> from deepgen.data import DataInfo
>>> from deepgen.registry import get_model_class, temporary
>>> class DiagGaussianFlow(Flow):
...     def build_bijector(self):
...         return Compose(self.preprocess(self.info), Affine(self.info.shape))
>>> with temporary("diag-gaussian-flow", DiagGaussianFlow):
...     flow = get_model_class("diag-gaussian-flow")(DataInfo("digits", (1, 8, 8), 17))
>>> flow.bijector[0]  # discrete data: Logit first
Logit(alpha=0.05)
>>> flow.log_prob(torch.zeros(4, 1, 8, 8)).shape, flow.sample(3).shape
(torch.Size([4]), torch.Size([3, 1, 8, 8]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from deepgen.bijectors import Bijector, Identity, Logit, StandardNormal
from deepgen.data.transforms import dequantize
from deepgen.errors import ConfigError, DataError
from deepgen.models.base import DensityKind, LogLikelihood
from deepgen.models.density import ContinuousDensityModel


@dataclass(frozen=True)
class FlowSampleOptions:
    """Sampling options shared by flows.

    temperature: standard deviation of the base distribution when sampling (Kingma & Dhariwal,
        Glow, 2018, arXiv:1807.03039). 1 samples the model's density; below 1 trades diversity for
        fidelity and no longer samples the density that log-likelihoods score; 0 maps the base's
        mode through the flow (the data mode for affine or volume-preserving flows).
    """

    temperature: float = 1.0

    def __post_init__(self):
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise ConfigError(f"temperature must be a finite number >= 0, got {self.temperature}")


class Flow(ContinuousDensityModel):
    """A normalizing flow: ``self.bijector`` (data -> latent) over ``self.base`` (default N(0, I)).

    Subclasses implement :meth:`build_bijector` (called in ``__init__``, with ``self.info`` and
    ``self.config`` set) and are registered with ``@register``. Optional hooks:

    * :meth:`build_base`: the base distribution (default ``StandardNormal(info.shape)``; a bijector
      that changes the example's shape needs ``StandardNormal(latent_shape)``);
    * :meth:`embed_context`: what a conditional flow (``conditional = True``) hands its bijector as
      ``context`` for labels ``y`` (default: ``y`` itself, (B,) integers, which conditional layers
      one-hot encode to ``self.context_features`` features).

    Class conditioning on request: a subclass sets ``condition_option = "class_conditional"`` and
    gives its Config that boolean field; the instance is then ``conditional`` and builds its layers
    with ``context_features = info.num_classes``.

    Latent space: :meth:`encode` maps data to latents (deterministically: discrete data at the
    centres of their dequantisation bins), :meth:`decode` maps latents back, and
    :meth:`interpolate` decodes straight lines between two examples' latents.

    Shapes: data ``(B, *info.shape)``; ``log_density`` and ``log_prob`` ``(B,)`` in nats.
    """

    family = "flow"
    SampleConfig = FlowSampleOptions
    has_exact_density = True
    bijector: Bijector
    #: Alpha of the default ``Logit`` preprocessing of discrete data (RealNVP's 0.05).
    logit_alpha: ClassVar[float] = 0.05

    def __init__(self, info, config=None):
        super().__init__(info, config)
        if self.condition_option and getattr(self.config, self.condition_option, False):
            self.conditional = True
            if not info.num_classes:
                raise DataError(f"{self.name} with {self.condition_option} needs labelled data; {info.name} has none")
        #: what conditional layers receive: (B,) labels, one-hot encoded to this many features
        self.context_features = info.num_classes if self.conditional else None
        self.bijector = self.build_bijector()
        if not isinstance(self.bijector, Bijector):
            raise TypeError(f"{type(self).__name__}.build_bijector must return a Bijector")
        self.base = self.build_base()

    # -- hooks ------------------------------------------------------------------------------------
    def build_bijector(self) -> Bijector:
        """The flow's bijector, data -> latent; start it with ``self.preprocess(self.info)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement build_bijector()")

    def build_base(self):
        """The base distribution: ``log_prob(z) -> (B,)``, ``sample(n, generator, temperature)``."""
        return StandardNormal(self.info.shape)

    def embed_context(self, y: torch.Tensor | None):
        """The ``context`` the bijector receives for labels ``y`` (None for unconditional flows)."""
        return y

    @classmethod
    def preprocess(cls, info, alpha: float | None = None) -> Bijector:
        """The first layer for data described by ``info``: ``Logit(alpha)`` on discrete data, else identity.

        Dequantised discrete data lie in (0, 1); the logit takes them to the real line where affine
        couplings and a Gaussian base make sense (Dinh et al. 2017, arXiv:1605.08803, section 4.1).
        ``alpha`` defaults to :attr:`logit_alpha`.
        """
        if info.is_discrete:
            return Logit(cls.logit_alpha if alpha is None else alpha)
        return Identity()

    # -- density and sampling ---------------------------------------------------------------------
    @property
    def log_det_is_exact(self) -> bool:
        """False when a layer estimates its log-determinant in the current mode (residual flows'
        roulette or series estimators, FFJORD's Hutchinson trace): the density is then an unbiased or
        truncated *estimate*, and :meth:`log_likelihood` labels it so."""
        return all(getattr(m, "log_det_is_exact", True) for m in self.bijector.modules())

    @property
    def density_kind(self) -> DensityKind:
        return super().density_kind if self.log_det_is_exact else DensityKind.ESTIMATE

    def log_likelihood(self, x, *, y=None, k=None, method=None) -> LogLikelihood:
        out = super().log_likelihood(x, y=y, k=k, method=method)
        if not self.log_det_is_exact:
            out.kind = DensityKind.ESTIMATE
            out.method += "; stochastic log-determinant estimate"
        return out

    def log_density(self, v: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) ``log p_Z(f(v)) + log|det df/dv|`` for ``v`` in the continuous model space."""
        z, log_det = self.bijector(v, self.embed_context(y))
        return self.base.log_prob(z) + log_det

    def _sample(self, n, options, *, generator, y):
        z = self.base.sample(n, generator=generator, temperature=options.temperature)
        x, _ = self.bijector.inverse(z, self.embed_context(y))
        return self.from_continuous(x)

    # -- latent space -----------------------------------------------------------------------------
    def _continuous_centres(self, x: torch.Tensor) -> torch.Tensor:
        if self.info.is_discrete:  # the centre of each dequantisation bin: deterministic
            return dequantize(x, self.info.levels, noise=torch.full_like(x, 0.5))[0]
        return x

    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Data (B, *info.shape) -> latents ``f(x)`` of the base's shape (no gradient)."""
        y = self.check_labels(y, len(x), draw=False)
        return self.bijector(self._continuous_centres(x), self.embed_context(y))[0]

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Latents -> data on the data's support: ``f^{-1}(z)``, quantised for discrete data. The
        gradient in z passes the quantisation straight through (that of ``f^{-1}``), so that a
        latent can be fitted to an observation (:mod:`deepgen.apps.inverse`)."""
        y = self.check_labels(y, len(z), draw=False)
        v = self.bijector.inverse(z, self.embed_context(y))[0]
        x = self.from_continuous(v)
        return v + (x - v).detach() if torch.is_grad_enabled() and z.requires_grad else x
