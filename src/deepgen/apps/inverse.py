"""Inverse problems with any trained generative model: recover x from a degraded observation y.

A degradation is a known forward operator A and, for denoising, noise: y = A(x) (+ sigma * noise).
The model supplies the prior p(x) that the observation alone lacks. Each method below uses only a
capability the model declares, never its name or family, so every present and future model with
the capability can restore.

Degradations (:class:`Degradation`, from a spec string; :data:`DEGRADATIONS`):

* ``inpaint:MASK``: A keeps the pixels of a mask from :mod:`deepgen.masks` (``inpaint:center``,
  ``inpaint:bottom-half``, ``inpaint:random:0.5``); nothing is known of the others.
* ``denoise:SIGMA``: A is the identity and y = x + SIGMA * N(0, I) in data units (images in [0, 1]),
  then rounded to the data's levels, as a stored noisy image would be.
* ``downsample:F``: A averages F x F blocks (images), so y has H/F x W/F pixels.

Each has a data-consistency projection P_y, the nearest x (in L2) with A(x) = y: paste the
observed pixels (inpainting); add back the residual y - A(x) upsampled by repetition (block
averages: the averaging of a repeated residual is the residual itself, so A(P_y(x)) = y exactly);
the identity for denoising, where y pins nothing down exactly. The *start point* is P_y of the
training data's mean image (inpainting: the observed pixels and the mean elsewhere; downsampling:
the block averages repeated; denoising: y itself). The ``observed`` method returns it: the baseline
with no model.

Methods (:data:`METHODS`; :func:`available_methods` lists a model's):

* ``complete`` (models with ``complete(x, mask)``: the autoregressive ones), inpainting only: draw
  the unobserved pixels from the model's conditional given the observed ones; exact for a mask whose
  observed pixels come first in the model's ordering (``bottom-half`` in raster order).
* ``latent`` (models with ``encode``/``decode``: VAEs, flows, GON): MAP in the latent space, as in
  compressed sensing with generative models (Bora, Jalal, Price & Dimakis 2017, arXiv:1703.03208):
  minimise ||A(decode(z)) - y||^2 / (2 s^2) + ||z||^2 / 2 over z, from z = encode(start), with Adam;
  the result is P_y(decode(z)). ``s`` is the observation's noise (denoising) or ``latent_sigma``.
* ``edit`` (models with ``edit(x, strength)``: diffusion and score models): SDEdit (Meng et al.
  2022, arXiv:2108.01073) with data consistency: x <- P_y(edit(x, s)) for strengths s decreasing
  from ``strength`` to ``strength / rounds``, from the start point; a projection after each
  partial denoising as ILVR does for downsampling (Choi et al. 2021, arXiv:2108.02938).
* ``guided`` (models with ``restore``: DDPM): data consistency at every step of the sampler rather
  than after whole rounds. Inpainting and downsampling sample from pure noise and, after every
  step, replace what the observation pins down by the observation noised to that step's level
  (RePaint's update, Lugmayr et al. 2022, arXiv:2201.09865, with its resampling when ``resample``
  > 1; ILVR for block averages). Denoising starts from y itself at the timestep whose noise level equals the
  observation's, which samples p(x | y) for a perfect denoiser (up to under one step's noise).

:func:`restoration_metrics` scores restorations against the originals: MSE and PSNR (peak 1, data in
[0, 1]) over all pixels and over the unobserved ones (inpainting), and, where the data has labels
and a deepgen classifier, the share of restorations classified as the original's class.

>>> import torch
>>> d = Degradation.parse("downsample:2", (1, 8, 8))
>>> x = torch.rand(3, 1, 8, 8)
>>> y = d.observe(x)
>>> tuple(y.shape), torch.allclose(d.forward(d.project(torch.zeros_like(x), y)), y)
((3, 1, 4, 4), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deepgen.data.transforms import snap
from deepgen.errors import ConfigError
from deepgen.masks import make_mask
from deepgen.metrics.image_quality import psnr_from_mse
from deepgen.models.base import GenerativeModel

#: Degradation specs and what they do.
DEGRADATIONS = {
    "inpaint:MASK": "hide the pixels of a named mask (deepgen complete --help lists them), e.g. inpaint:center",
    "denoise:SIGMA": "add Gaussian noise of std SIGMA (data units, images in [0, 1]), e.g. denoise:0.2",
    "downsample:F": "average F x F blocks of pixels, e.g. downsample:2",
}

#: Restoration methods and the capability each needs.
METHODS = {
    "observed": "no model: the observation made consistent with the data's mean (the baseline)",
    "complete": "sample the unobserved pixels from the model's conditional (complete; inpainting only)",
    "latent": "MAP over the latent space: fit decode(z) to the observation (encode/decode)",
    "edit": "partial noising and denoising, projected onto the observation after each round (edit)",
    "guided": "sampling kept consistent with the observation at every denoising step (restore)",
}


@dataclass(frozen=True)
class Degradation:
    """A forward operator on examples of ``shape``: ``kind`` (inpaint, denoise, downsample), the
    observed ``mask`` (inpaint, bool of ``shape``), the noise ``sigma`` (denoise), the ``factor``
    (downsample), and ``levels``, the data's levels a noisy observation is rounded to (None:
    continuous)."""

    kind: str
    shape: tuple[int, ...]
    mask: torch.Tensor | None = None
    sigma: float = 0.0
    factor: int = 1
    levels: int | None = None
    spec: str = ""

    @classmethod
    def parse(
        cls, spec: str, shape, levels: int | None = None, generator: torch.Generator | None = None
    ) -> Degradation:
        """A degradation from a spec in :data:`DEGRADATIONS` for examples of ``shape``."""
        shape = tuple(shape)
        kind, _, arg = spec.partition(":")
        if kind == "inpaint":
            if not arg:
                raise ConfigError("inpaint needs a mask, e.g. inpaint:center or inpaint:bottom-half")
            return cls("inpaint", shape, mask=make_mask(arg, shape, generator), levels=levels, spec=spec)
        if kind == "denoise":
            try:
                sigma = float(arg)
            except ValueError:
                raise ConfigError(f"{spec!r}: expected denoise:SIGMA with SIGMA a positive number") from None
            if not sigma > 0:
                raise ConfigError(f"{spec!r}: SIGMA must be > 0")
            return cls("denoise", shape, sigma=sigma, levels=levels, spec=spec)
        if kind == "downsample":
            if len(shape) != 3:
                raise ConfigError(f"{spec!r} averages blocks of image pixels; examples have shape {shape}")
            try:
                f = int(arg)
            except ValueError:
                raise ConfigError(f"{spec!r}: expected downsample:F with F an integer >= 2") from None
            if f < 2 or shape[1] % f or shape[2] % f:
                raise ConfigError(f"{spec!r}: F must be >= 2 and divide the image size {shape[1]}x{shape[2]}")
            return cls("downsample", shape, factor=f, levels=levels, spec=spec)
        raise ConfigError(f"unknown degradation {spec!r}; valid: {', '.join(DEGRADATIONS)}")

    # -- the operator ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """A(x), noiseless: the observed pixels (others zeroed), x itself, or the block averages."""
        if self.kind == "inpaint":
            return x * self.mask.to(x.device)
        if self.kind == "downsample":
            return F.avg_pool2d(x, self.factor)
        return x

    def observe(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """y = A(x), with noise for denoising (rounded to the data's levels and clamped to [0, 1])."""
        y = self.forward(x)
        if self.kind == "denoise":
            noise = torch.randn(y.shape, generator=generator).to(y.device)
            y = y + self.sigma * noise
            y = snap(y, self.levels) if self.levels is not None else y
        return y

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """P_y(x): the nearest x' to x with A(x') = y (the identity for denoising)."""
        if self.kind == "inpaint":
            return torch.where(self.mask.to(x.device), y, x)
        if self.kind == "downsample":
            r = y - F.avg_pool2d(x, self.factor)
            return x + r.repeat_interleave(self.factor, -2).repeat_interleave(self.factor, -1)
        return x

    def project_onto(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """P_{A(ref)}(x): x made to agree with the full-size example ``ref`` wherever A observes."""
        return self.project(x, self.forward(ref))

    def residual(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example squared error ||A(x) - y||^2 (B,)."""
        return (self.forward(x) - y).pow(2).flatten(1).sum(1)

    def start(self, y: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """The start point: P_y(mean image), y itself for denoising."""
        if self.kind == "denoise":
            return y.clone()
        return self.project(mean.to(y.device).expand(len(y), *self.shape), y)

    def unobserved(self) -> torch.Tensor | None:
        """Bool of ``shape``, True where nothing is observed (inpainting), else None."""
        return None if self.mask is None else ~self.mask


def available_methods(model: GenerativeModel, degradation: Degradation) -> list[str]:
    """The methods of :data:`METHODS` that ``model`` offers for ``degradation`` (``observed`` always)."""
    out = ["observed"]
    if model.supports("complete") and degradation.kind == "inpaint":
        out.append("complete")
    if model.supports("encode"):
        out.append("latent")
    if model.supports("edit"):
        out.append("edit")
    if model.supports("restore"):
        out.append("guided")
    return out


def restore(
    model: GenerativeModel,
    y: torch.Tensor,
    degradation: Degradation,
    method: str,
    *,
    mean: torch.Tensor,
    generator: torch.Generator | None = None,
    strength: float = 0.5,
    rounds: int = 4,
    steps: int = 300,
    lr: float = 0.05,
    latent_sigma: float = 0.05,
    resample: int = 1,
    options: dict | None = None,
) -> torch.Tensor:
    """Restorations (B, *shape) of observations ``y`` by ``method`` (see the module docstring).

    ``mean``: the training data's mean example (the start point's filler). ``strength``/``rounds``:
    the edit method's schedule. ``steps``/``lr``/``latent_sigma``: the latent method's Adam steps,
    learning rate and the observation's assumed noise where it has none. ``resample``: the guided
    method's RePaint resampling (each step taken that many times; inpainting and downsampling).
    ``options``: the model's
    sampling options (e.g. ``sampler=ddim, steps=20`` for edit).
    """
    options = options or {}
    offered = available_methods(model, degradation)
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    if method not in offered:
        need = {"complete": "complete (and an inpainting task)", "latent": "encode", "guided": "restore"}
        need = need.get(method, method)
        raise ConfigError(
            f"{model.name} cannot restore by {method}: it needs the capability {need}; "
            f"this model offers: {', '.join(offered)}"
        )
    x0 = degradation.start(y, mean)
    if method == "observed":
        return x0
    if method == "complete":
        with torch.no_grad():
            return model.complete(x0, degradation.mask.to(x0.device), generator=generator, **options)
    if method == "guided":
        with torch.no_grad():
            if degradation.kind == "denoise":
                return model.restore(y, None, noise=degradation.sigma, generator=generator, **options)
            return model.restore(x0, degradation.project_onto, resample=resample, generator=generator, **options)
    if method == "edit":
        if not 0 < strength <= 1 or rounds < 1:
            raise ConfigError(f"edit needs strength in (0, 1] and rounds >= 1, got {strength}, {rounds}")
        x = x0
        with torch.no_grad():
            for r in range(rounds):
                s = strength * (rounds - r) / rounds
                x = degradation.project(model.edit(_on_support(x, degradation), s, generator=generator, **options), y)
        return _on_support(x, degradation)
    return _latent_map(model, y, degradation, x0, steps=steps, lr=lr, sigma=latent_sigma)


def _on_support(x: torch.Tensor, d: Degradation) -> torch.Tensor:
    return snap(x, d.levels) if d.levels is not None else x


def _latent_map(model, y, d: Degradation, x0, *, steps, lr, sigma) -> torch.Tensor:
    """argmin_z ||A(decode(z)) - y||^2 / (2 s^2) + ||z||^2 / 2 by Adam, from encode(x0)."""
    if steps < 1 or lr <= 0 or sigma <= 0:
        raise ConfigError(f"latent needs steps >= 1, lr > 0 and latent_sigma > 0, got {steps}, {lr}, {sigma}")
    s2 = (d.sigma if d.kind == "denoise" else sigma) ** 2
    with torch.no_grad():
        z = model.encode(_on_support(x0, d)).detach().clone()
    z.requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                fit = d.residual(model.decode(z), y) / (2 * s2)
                if not fit.requires_grad:
                    raise ConfigError(
                        f"{model.name}'s decode is not differentiable in z (e.g. an inverse found by "
                        "iteration): the latent method cannot fit it; try another method"
                    )
                (fit + 0.5 * z.pow(2).flatten(1).sum(1)).sum().backward()
                opt.step()
    finally:
        for p in params:
            p.requires_grad_(True)
    with torch.no_grad():
        return _on_support(d.project(model.decode(z), y), d)


def restoration_metrics(
    restored: torch.Tensor, original: torch.Tensor, degradation: Degradation, labels=None, classifier=None
) -> dict:
    """MSE and PSNR (dB, the mean of per-example PSNRs, each capped at 100 dB so that one exact
    restoration does not make the mean infinite) over all pixels and over the unobserved ones
    (inpainting), with standard errors; ``label_agreement`` with a classifier (a deepgen feature
    network: the share of restorations given the original's label) when labels are given."""
    err = (restored - original).pow(2).flatten(1)
    per = {"all": err.mean(1)}
    hidden = degradation.unobserved()
    if hidden is not None:
        per["unobserved"] = err[:, hidden.flatten().to(err.device)].mean(1)
    out = {}
    n = len(restored)
    for where, m in per.items():
        p = psnr_from_mse(m.double().clamp_min(1e-10))
        out[f"mse_{where}"] = {"value": m.mean().item(), "se": (m.std() / math.sqrt(n)).item() if n > 1 else 0.0}
        out[f"psnr_{where}"] = {"value": p.mean().item(), "se": (p.std() / math.sqrt(n)).item() if n > 1 else 0.0}
    if labels is not None and classifier is not None:
        from deepgen.metrics.features import accuracy

        out["label_agreement"] = {"value": accuracy(classifier, restored, labels)}
    out["n"] = n
    return out
