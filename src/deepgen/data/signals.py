"""Signals: one image or field as a function from coordinates to values, sampled at any resolution.

An implicit neural representation (SIREN: Sitzmann et al., 2020, arXiv:2006.09661) is trained on a
single signal ``f: [-1, 1]^d -> R^C``. deepgen holds it as a :class:`Signal` and turns it into a
:class:`~deepgen.data.base.Dataset` of kind ``"signal"`` whose rows are (coordinate, value) pairs:

* ``split.x`` (``storage``): coordinates, float32 ``(N, d)`` in ``[-1, 1]``;
* ``split.y``: float32 targets ``(N, C)``, values in ``[0, 1]`` (an RGB photo's 8-bit pixels / 255).

So the engine batches a signal exactly as it batches labelled examples (rows of ``x`` with their
``y``); a signal model's ``loss(x, y)`` regresses ``y`` on ``x``.

Conventions:

* Coordinates are *pixel centres*: along an axis of ``n`` samples, sample ``i`` sits at
  ``-1 + (2 i + 1) / n`` (``align_corners=False``). Grids of different resolutions then cover the same
  square, and a grid at twice the resolution shares no point with the native one.
* Coordinate component ``j`` runs along grid axis ``j``: for an image ``(C, H, W)``, ``x[:, 0]`` is the
  row (top -1, bottom +1) and ``x[:, 1]`` the column (left -1, right +1). Rows are in C order, so
  ``y.reshape(H, W, C)`` is the image.

Splits: ``train`` is every pixel of the native grid (fitting is the task, as in SIREN). ``val`` and
``test`` are the signal at *twice* the native resolution, from the source itself (the photo resampled,
or the analytic field evaluated), so their PSNR measures the representation between training pixels.

>>> s = named_signal("waves", 32)
>>> ds = s.to_dataset()
>>> ds.train.x.shape, ds.train.y.shape, ds.test.x.shape
(torch.Size([1024, 2]), torch.Size([1024, 3]), torch.Size([4096, 2]))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from deepgen.data.base import DataInfo, Dataset, Split
from deepgen.errors import UnknownNameError


def coordinate_grid(resolution: tuple[int, ...] | int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Pixel-centre coordinates in ``[-1, 1]^d`` of a grid, float ``(prod(resolution), d)`` in C order."""
    res = (resolution,) if isinstance(resolution, int) else tuple(resolution)
    axes = [(2 * torch.arange(n, dtype=torch.float64) + 1) / n - 1 for n in res]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)
    return grid.reshape(-1, len(res)).to(dtype)


def values_to_rows(values: torch.Tensor) -> torch.Tensor:
    """Values ``(C, *grid)`` -> rows ``(prod(grid), C)`` matching :func:`coordinate_grid`'s order."""
    c = values.shape[0]
    return values.reshape(c, -1).T.contiguous()


def rows_to_values(rows: torch.Tensor, resolution: tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`values_to_rows`: ``(prod(grid), C)`` -> ``(C, *grid)`` (e.g. a rendered image)."""
    return rows.T.reshape(rows.shape[1], *resolution)


@dataclass
class Signal:
    """One signal: a function ``[-1, 1]^d -> [0, 1]^C`` known through ``sample_at``.

    Attributes:
        name: e.g. ``"signal:china"``.
        resolution: native grid ``(H, W)`` (images) or ``(L,)`` (1-D fields).
        channels: value channels C (3 for RGB).
        sample_at: ``resolution -> values (C, *resolution)`` float32 in [0, 1]; ground truth at any
            resolution (a photo is resampled with an antialiasing filter, an analytic field evaluated at
            the pixel centres).
        source: where it came from, for reports.
    """

    name: str
    resolution: tuple[int, ...]
    channels: int
    sample_at: Callable[[tuple[int, ...]], torch.Tensor]
    source: str = ""

    @property
    def values(self) -> torch.Tensor:
        """Values on the native grid, ``(C, *resolution)``."""
        return self.sample_at(self.resolution)

    @property
    def info(self) -> DataInfo:
        return DataInfo(self.name, (self.channels, *self.resolution), kind="signal", grid=self.resolution)

    def split_at(self, resolution: tuple[int, ...]) -> Split:
        """All pixels at ``resolution``: coordinates ``x`` (N, d) and values ``y`` (N, C)."""
        return Split(coordinate_grid(resolution), values_to_rows(self.sample_at(resolution)))

    def to_dataset(self, eval_factor: int = 2) -> Dataset:
        """Dataset of kind ``"signal"``: train on the native grid, evaluate at ``eval_factor`` x resolution."""
        hi = tuple(n * eval_factor for n in self.resolution)
        held = self.split_at(hi)
        return Dataset(self.info, self.split_at(self.resolution), held, held, self.source, container=self)


# -- named signals ---------------------------------------------------------------------------------


def photo(name: str, size: int = 64) -> Signal:
    """One of scikit-learn's two bundled photos (``china``, ``flower``; 427 x 640 RGB) as a signal.

    The centre 427 x 427 square is cropped, then resampled (Lanczos, antialiased) to ``size`` x ``size``
    on demand at any resolution, from the full-resolution photo. Values: RGB in [0, 1].
    """
    from PIL import Image
    from sklearn.datasets import load_sample_image

    arr = load_sample_image(f"{name}.jpg")
    h, w = arr.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    im = Image.fromarray(np.ascontiguousarray(arr[top : top + s, left : left + s]))

    def sample_at(res: tuple[int, ...]) -> torch.Tensor:
        small = np.asarray(im.resize((res[1], res[0]), Image.LANCZOS), dtype=np.float32) / 255.0
        return torch.from_numpy(small.transpose(2, 0, 1).copy())

    return Signal(f"signal:{name}", (size, size), 3, sample_at, f"sklearn.datasets.load_sample_image({name!r})")


def waves_field(coords: torch.Tensor) -> torch.Tensor:
    """An analytic RGB field on ``[-1, 1]^2``: smooth plane waves and a ring, values in [0, 1], ``(N, 3)``."""
    u, v = coords[:, 0].double(), coords[:, 1].double()
    r = torch.sqrt(u * u + v * v)
    red = 0.5 + 0.5 * torch.sin(math.pi * (2 * u + v))
    green = 0.5 + 0.5 * torch.cos(3 * math.pi * v) * torch.cos(math.pi * u)
    blue = torch.exp(-(((r - 0.5) / 0.15) ** 2))
    return torch.stack([red, green, blue], 1).float()


def chirp_field(coords: torch.Tensor) -> torch.Tensor:
    """An analytic 1-D chirp on [-1, 1]: ``0.5 + 0.5 sin(pi (4 t + 6 t^2))``, values in [0, 1], ``(N, 1)``."""
    t = coords[:, 0].double()
    return (0.5 + 0.5 * torch.sin(math.pi * (4 * t + 6 * t * t))).float()[:, None]


def analytic(name: str, field: Callable[[torch.Tensor], torch.Tensor], resolution: tuple[int, ...]) -> Signal:
    """A signal given by a function of coordinates ``(N, d) -> (N, C)``, exact at every resolution."""
    channels = field(coordinate_grid((1,) * len(resolution))).shape[1]

    def sample_at(res: tuple[int, ...]) -> torch.Tensor:
        return rows_to_values(field(coordinate_grid(res)), tuple(res))

    return Signal(f"signal:{name}", tuple(resolution), channels, sample_at, f"analytic field {name}")


#: Named signals (``signal:NAME``) and what they are; ``DataSpec.image_size`` sets the native size.
SIGNALS: dict[str, str] = {
    "china": "sklearn's bundled photo china.jpg, RGB coordinates -> values, 64 px (--image-size)",
    "flower": "sklearn's bundled photo flower.jpg, RGB coordinates -> values, 64 px (--image-size)",
    "waves": "analytic 2D RGB field (plane waves and a ring), 64 px (--image-size), exact at any resolution",
    "chirp": "analytic 1-D chirp, 256 samples (--image-size), exact at any resolution",
}


def named_signal(name: str, size: int | None = None) -> Signal:
    """The named signal ``name`` (without the ``signal:`` prefix) at native size ``size``."""
    if name in ("china", "flower"):
        return photo(name, size or 64)
    if name == "waves":
        return analytic("waves", waves_field, (size or 64,) * 2)
    if name == "chirp":
        return analytic("chirp", chirp_field, (size or 256,))
    raise UnknownNameError("signal", name, SIGNALS)
