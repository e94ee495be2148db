"""What the named flows share: vector flows on any data (flattening), and multiscale image levels.

Not a model (nothing here is registered). :class:`VectorFlow` is the base of flows that act on
vectors (NICE, MAF, IAF, NSF, planar, FFJORD): images are flattened after the preprocessing.
:func:`nest` builds the levels of multiscale image flows (RealNVP, Glow, Residual Flow); see
:mod:`deepgen.bijectors.reshape` for why each level is a bijector that keeps the data's shape.
"""

from __future__ import annotations

from collections.abc import Callable

from deepgen.bijectors import Bijector, StandardNormal
from deepgen.errors import ConfigError
from deepgen.models.flows.base import Flow


class Flatten(Bijector):
    """(B, *shape) <-> (B, D): lets a vector flow run on images; log-det 0."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"

    def forward(self, x, context=None):
        return x.flatten(1), x.new_zeros(x.shape[0])

    def inverse(self, z, context=None):
        return z.view(z.shape[0], *self.shape), z.new_zeros(z.shape[0])


class VectorFlow(Flow):
    """A flow over vectors: any data is preprocessed, then flattened to (B, D); the base is N(0, I_D).

    Subclasses implement :meth:`build_layers` (the layers after flattening, given D) instead of
    :meth:`build_bijector`.
    """

    min_dim: int = 1

    def build_base(self):
        return StandardNormal((self.info.dim,))

    def build_layers(self, d: int) -> list[Bijector]:
        raise NotImplementedError(f"{type(self).__name__} must implement build_layers(d)")

    def build_bijector(self):
        d = self.info.dim
        if d < self.min_dim:
            raise ConfigError(f"{self.name} needs at least {self.min_dim} dimensions, the data have {d}")
        from deepgen.bijectors import Compose

        return Compose(self.preprocess(self.info), Flatten(self.info.shape), *self.build_layers(d))


def check_layers(name: str, layers: int, hidden: tuple[int, ...]) -> None:
    """ConfigError unless a flow has at least one layer and positive hidden sizes."""
    if layers < 1:
        raise ConfigError(f"{name} needs at least one layer, got {layers}")
    if not hidden or any(h < 1 for h in hidden):
        raise ConfigError(f"{name} hidden sizes must be positive and non-empty, got {hidden}")


def squeezes_allowed(shape: tuple[int, ...]) -> int:
    """How many times an image (C, H, W) can be squeezed (H and W halved) before one becomes odd."""
    _, h, w = shape
    n = 0
    while h % 2 == 0 and w % 2 == 0 and h > 1 and w > 1:
        h, w, n = h // 2, w // 2, n + 1
    return n


def check_levels(name: str, shape: tuple[int, ...], levels: int, most: int, default: int) -> int:
    """The number of levels to build: ``levels`` (0 means ``default``), at most ``most``, checked."""
    if levels == 0:
        return max(1, min(default, most))
    if not 1 <= levels <= most:
        raise ConfigError(
            f"{name}: {levels} levels need more halvings of {shape[1]}x{shape[2]} than it allows "
            f"(at most {most} levels for this image size)"
        )
    return levels


def nest(
    shape: tuple[int, ...], levels: int, level: Callable[[tuple[int, ...], Bijector | None], Bijector]
) -> Bijector:
    """Build ``levels`` nested levels: ``level(shape, inner)`` with ``inner`` the next level (None last).

    ``level`` receives its input's shape (C, H, W) and returns a bijector keeping that shape; it
    squeezes once and factors out half of the 4C channels, so the next level's input is
    (2C, H/2, W/2).
    """

    def build(s: tuple[int, ...], remaining: int) -> Bijector:
        if remaining == 1:
            return level(s, None)
        c, h, w = s
        inner = build((2 * c, h // 2, w // 2), remaining - 1)
        return level(s, inner)

    return build(tuple(shape), levels)
