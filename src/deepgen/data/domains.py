"""Two unpaired domains: example sets A and B for translation models (CycleGAN: Zhu et al., 2017, arXiv:1703.10593).

A :class:`DomainPair` holds two examples-kind datasets. :func:`DomainPair.to_dataset` returns a
:class:`~deepgen.data.base.Dataset` of kind ``"domains"`` whose splits are domain A's (labels dropped) and
whose ``container`` is the pair. Its ``info`` describes A; ``info.domain_b`` describes B (shapes and
levels may differ).

Batches are pairs of *independent* draws, one from each domain: the engine draws A rows from
``train`` as for any dataset, and a B batch of the same size with :meth:`Dataset.draw_b`
(``container.b.train``, uniformly with replacement, from the global torch RNG, which the trainer seeds
and checkpoints), passing it as ``y``: ``model.loss(x_a, x_b)``. Nothing pairs row i of A with row i of
B, so a model cannot rely on paired data.

Named pairs split sklearn's bundled digits into two *disjoint* halves (a seeded shuffle of each split), so
no B image is a transformed copy of an A image:

* ``digits-inverted``: A digits, B digits with levels inverted (``16 - k``): same shape, 17 levels.
* ``digits-transposed``: A digits, B digits transposed (rows <-> columns): a change of geometry.

and one pair of two different sources (it needs MNIST, from ``--data-dir`` or ``$DEEPGEN_DATA``):

* ``digits-mnist``: A sklearn's digits upsampled to 28x28 (bilinear to 20x20, the size of MNIST's
  digit box, then a border of 4, at 256 levels), B MNIST: the same ten classes in two styles, never
  paired. Both domains keep their labels (``container.a``, ``container.b``) for measuring whether a
  translation keeps the class. Domain A also has a second judge (``DomainPair.judges``): the
  deepgen-digits classifier, which reads A's images through :func:`digits_view` (the 20x20 box
  cropped and averaged back to 8x8 at 17 levels), since MNIST's classifier is a poor judge of
  upsampled sklearn digits (it recognises about 87% of real ones).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from deepgen.data.base import Dataset, Split
from deepgen.errors import UnknownNameError


@dataclass
class DomainPair:
    """Domains ``a`` and ``b``: two examples-kind datasets of any shapes.

    ``judges``: extra classifiers for a domain's label agreement, ``{"a" or "b": (feature network
    name, view)}``, where ``view`` maps the domain's model-space images to the network's input.
    """

    name: str
    a: Dataset
    b: Dataset
    judges: dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = field(default_factory=dict)

    def to_dataset(self) -> Dataset:
        info = replace(self.a.info, name=self.name, kind="domains", num_classes=None, domain_b=self.b.info)
        strip = [s.with_storage(s.storage) for s in (self.a.train, self.a.val, self.a.test)]  # no labels
        src = f"A: {self.a.source}; B: {self.b.source}"
        return Dataset(info, *strip, source=src, batch_transform=self.a.batch_transform, container=self)


def _halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[0::2]), np.sort(perm[1::2])


def split_domains(
    ds: Dataset, name_b: str, map_b: Callable[[torch.Tensor, int], torch.Tensor], seed: int = 0
) -> DomainPair:
    """Two unpaired domains from one discrete dataset: disjoint halves of each split.

    ``map_b(codes, levels)`` maps B's integer codes (a split's levels: under dynamic binarisation the
    training split keeps grey levels while evaluation splits are binary).
    """
    parts_a, parts_b = [], []
    for i, s in enumerate((ds.train, ds.val, ds.test)):
        ia, ib = (torch.from_numpy(h) for h in _halves(len(s), seed + i))
        parts_a.append(Split(s.storage[ia], None if s.y is None else s.y[ia], levels=s.levels))
        parts_b.append(
            Split(map_b(s.storage[ib], s.levels).contiguous(), None if s.y is None else s.y[ib], levels=s.levels)
        )
    b_shape = tuple(parts_b[0].storage.shape[1:])
    info_b = replace(ds.info, name=f"{ds.info.name}-{name_b}", shape=b_shape)
    a = Dataset(ds.info, *parts_a, source=ds.source, batch_transform=ds.batch_transform)
    b = Dataset(info_b, *parts_b, source=f"{ds.source} ({name_b})", batch_transform=ds.batch_transform)
    return DomainPair(f"domains:{ds.info.name}-{name_b}", a, b)


def upsample_digits(codes: torch.Tensor, levels: int) -> torch.Tensor:
    """sklearn digit codes (N, 1, 8, 8) at ``levels`` -> MNIST-framed uint8 codes (N, 1, 28, 28) at 256 levels."""
    import torch.nn.functional as F

    x = codes.float() / (levels - 1)
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    x = F.pad(x, [4, 4, 4, 4])
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def digits_view(x: torch.Tensor, levels: int = 17) -> torch.Tensor:
    """The inverse view of :func:`upsample_digits`: model-space images (N, 1, 28, 28) in [0, 1] ->
    (N, 1, 8, 8) in [0, 1] at ``levels`` levels, by cropping the 20x20 digit box and averaging it
    down (area interpolation), so that the deepgen-digits classifier can read them."""
    import torch.nn.functional as F

    x = F.interpolate(x[..., 4:24, 4:24].float(), size=(8, 8), mode="area")
    return (x.clamp(0, 1) * (levels - 1)).round() / (levels - 1)


def digits_and_mnist(digits: Dataset, mnist: Dataset) -> DomainPair:
    """The ``digits-mnist`` pair: A upsampled sklearn digits, B MNIST (labels kept in both)."""
    parts = [
        Split(upsample_digits(s.storage, s.levels), s.y, levels=256) for s in (digits.train, digits.val, digits.test)
    ]
    info_a = replace(mnist.info, name="digits-28x28")
    a = Dataset(info_a, *parts, source=f"{digits.source} (bilinear to 20x20, padded to 28x28)")
    return DomainPair("domains:digits-mnist", a, mnist, judges={"a": ("deepgen-digits", digits_view)})


#: Named pairs (``domains:NAME``) and what they are.
DOMAINS: dict[str, str] = {
    "digits-inverted": "unpaired: digits (A) and level-inverted digits (B), disjoint halves of sklearn digits",
    "digits-transposed": "unpaired: digits (A) and transposed digits (B), disjoint halves of sklearn digits",
    "digits-mnist": "unpaired: sklearn digits upsampled to 28x28 (A) and MNIST (B); needs --data-dir",
}


def named_domains(name: str, digits: Dataset, seed: int = 0) -> DomainPair:
    """The named pair ``name`` (without ``domains:``) built from the loaded ``digits`` dataset."""
    if name == "digits-inverted":
        return split_domains(digits, "inverted", lambda k, levels: levels - 1 - k, seed)
    if name == "digits-transposed":
        return split_domains(digits, "transposed", lambda k, levels: k.transpose(-1, -2), seed)
    raise UnknownNameError("domain pair", name, DOMAINS)
