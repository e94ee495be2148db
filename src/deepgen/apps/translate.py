"""Image-to-image translation with any model that offers a way to map an input: a translation model
trained on both domains, or a model of the *target* domain alone that pulls a source image onto it.

Methods (:data:`METHODS`; :func:`available_methods` lists a model's), each using a capability only:

* ``translate`` (models with ``translate``: CycleGAN, Zhu et al. 2017, arXiv:1703.10593): trained
  on both unpaired domains, it maps A to B (``direction="a2b"``) or back.
* ``edit`` (models with ``edit``: DDPM, score SDEs), SDEdit translation (Meng et al. 2022,
  arXiv:2108.01073): noise the source image to ``strength`` of the way to pure noise and denoise it
  with a model of the target domain, which never saw the source domain. Low strength keeps the source
  (its class, its pose), high strength gives a typical target image that may not keep anything;
  the lectures' UNIT-DDPM uses the same mechanism with two domains.
* ``reconstruct`` (models with ``encode``: VAEs, flows, GON): ``decode(encode(x))`` by a model of
  the target domain, the projection onto what its decoder can produce (for a flow, which is
  invertible, this returns x itself, so it is only a baseline).

The source images must already have the target model's shape and levels (resize or view them
first, e.g. :func:`deepgen.data.domains.digits_view` for MNIST read as 8 x 8 digits).
:func:`translation_scores` measures a translation as :mod:`deepgen.evaluate.translation` does for
CycleGAN: the share of translations a classifier of the target domain gives the source's label, beside
the same for the untranslated sources (what doing nothing scores), and FID/KID against the target's
real images.

>>> import torch
>>> from deepgen.data import DataInfo
>>> from deepgen.models.baselines import Independent
>>> available_methods(Independent(DataInfo("toy", (4,))))
[]
"""

from __future__ import annotations

import torch

from deepgen.errors import ConfigError
from deepgen.models.base import GenerativeModel

#: Translation methods and the capability each needs.
METHODS = {
    "translate": "a model of both domains maps the source to the target (translate)",
    "edit": "SDEdit: partial noising and denoising by a model of the target domain (edit)",
    "reconstruct": "decode(encode(x)) by a model of the target domain (encode)",
}
NEEDS = {"translate": "translate", "edit": "edit", "reconstruct": "encode"}


def available_methods(model: GenerativeModel) -> list[str]:
    """The methods of :data:`METHODS` that ``model`` offers."""
    return [m for m, cap in NEEDS.items() if model.supports(cap)]


@torch.no_grad()
def translate(
    model: GenerativeModel,
    x: torch.Tensor,
    method: str,
    *,
    strength: float = 0.5,
    direction: str = "a2b",
    generator: torch.Generator | None = None,
    batch_size: int = 256,
    options: dict | None = None,
) -> torch.Tensor:
    """Translations (B, *shape) of source images ``x`` by ``method`` (see the module docstring), in
    batches of ``batch_size`` on the model's device; results on the CPU. ``strength``: the edit
    method's noise level in [0, 1]; ``direction``: the translate method's; ``options``: the model's
    sampling options (e.g. ``{"sampler": "ddim", "steps": 50}`` for edit)."""
    options = options or {}
    if method not in METHODS:
        raise ConfigError(f"unknown translation method {method!r}; valid: {', '.join(METHODS)}")
    offered = available_methods(model)
    if method not in offered:
        raise ConfigError(
            f"{model.name} cannot translate by {method}: it needs the capability {NEEDS[method]}; "
            f"this model offers: {', '.join(offered) or 'none'}"
        )
    model.check_input(x[:1].to(model.device))
    dev, out = model.device, []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].to(dev)
        if method == "translate":
            r = model.translate(xb, generator=generator, direction=direction, **options)
        elif method == "edit":
            r = model.edit(xb, strength, generator=generator, **options)
        else:
            r = model.decode(model.encode(xb))
        out.append(r.detach().cpu())
    return torch.cat(out)


@torch.no_grad()
def translation_scores(
    translated: torch.Tensor,
    source: torch.Tensor,
    labels: torch.Tensor,
    judge,
    target=None,
    *,
    features: str | None = None,
    seed: int = 0,
) -> dict:
    """``label_agreement`` (the share of ``translated`` that ``judge``, a classifier of the target
    domain, assigns to the source's label), ``untranslated_source`` (its share on ``source`` itself),
    and, given the ``target`` dataset, FID and KID of the translations against its reference set
    (:meth:`deepgen.evaluate.quality.SampleQuality.for_dataset`, ``features`` as there)."""
    from deepgen.metrics.features import accuracy

    out = {
        "label_agreement": accuracy(judge, translated, labels),
        "untranslated_source": accuracy(judge, source, labels),
        "n": len(translated),
    }
    if target is not None:
        from deepgen.evaluate.quality import SampleQuality

        m = SampleQuality.for_dataset(target, features).evaluate(translated, seed)
        out.update({k: m[k] for k in ("fid", "kid") if k in m})
    return out
