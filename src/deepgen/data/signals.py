"""Signals: one image or field as a function from coordinates to values, sampled at any resolution.

An implicit neural representation (SIREN: Sitzmann et al., 2020, arXiv:2006.09661) is trained on a
single signal ``f: [-1, 1]^d -> R^C``. deepgen holds it as a :class:`Signal` and turns it into a
:class:`~deepgen.data.base.Dataset` of kind ``"signal"`` whose rows are (coordinate, value) pairs:

* ``split.x`` (``storage``): coordinates, float32 ``(N, d)`` in ``[-1, 1]``;
* ``split.y``: float32 targets ``(N, C (d + 2))``: first the values ``(N, C)`` in ``[0, 1]`` (an RGB
  photo's 8-bit pixels / 255), then the signal's gradient with respect to the coordinates
  ``(N, C d)`` (channel-major: column ``C + k d + j`` is d value_k / d c_j), then its Laplacian
  ``(N, C)``. :func:`split_targets` takes them apart.

So the engine batches a signal exactly as it batches labelled examples (rows of ``x`` with their
``y``); a signal model's ``loss(x, y)`` regresses the values on ``x`` or, as in SIREN's Poisson
experiment, matches its own derivatives to the signal's (fitting a photo from its gradients alone).

Derivatives are in value units per coordinate unit (a grid of ``n`` pixels spans 2, so the spacing
is ``h = 2 / n``). An analytic field's are exact (autograd through the field); a photo's are finite
differences of its pixels as in the SIREN paper: the Sobel operator (a central difference smoothed
by [1, 2, 1] / 4 across the other axis) divided by ``2 h``, and the 5-point Laplacian divided by
``h^2``, with mirrored borders.

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
(torch.Size([1024, 2]), torch.Size([1024, 12]), torch.Size([4096, 2]))
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


def grid_derivatives(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Finite-difference gradient ``(C d, *grid)`` and Laplacian ``(C, *grid)`` of values ``(C, *grid)``.

    Coordinates span [-1, 1] along every axis (spacing ``2 / n``). Along axis ``j`` the derivative is
    the central difference, smoothed by [1, 2, 1] / 4 along the other axis of a 2-D grid (the Sobel
    operator); the Laplacian is the sum of second differences. Borders are mirrored.
    """
    c, grid = values.shape[0], tuple(values.shape[1:])
    d = len(grid)
    if d not in (1, 2):
        raise ValueError(f"finite-difference derivatives are for 1-D and 2-D grids, got {d}-D")
    v = values.double()
    mode = "reflect" if min(grid) > 1 else "replicate"  # a one-pixel axis has nothing to mirror
    pad = torch.nn.functional.pad(v.reshape(1, c, *grid), (1, 1) * d, mode=mode).squeeze(0)

    def shifted(offsets):  # pad[..., i + 1 + o] for every pixel i of the native grid
        idx = tuple(slice(1 + o, 1 + o + n) for o, n in zip(offsets, grid))
        return pad[(slice(None), *idx)]

    grads, lap = [], torch.zeros_like(v)
    for j, n in enumerate(grid):
        h = 2.0 / n
        step = [0] * d
        step[j] = 1
        back = [-s for s in step]
        lap += (shifted(step) - 2 * v + shifted(back)) / h**2
        if d == 1:
            grads.append((shifted(step) - shifted(back)) / (2 * h))
            continue
        across = [0, 0]
        across[1 - j] = 1
        diff = 0
        for a, w in ((-1, 1.0), (0, 2.0), (1, 1.0)):
            off = [s * a for s in across]
            fwd = [x + y for x, y in zip(step, off)]
            bwd = [x + y for x, y in zip(back, off)]
            diff = diff + w / 4 * (shifted(fwd) - shifted(bwd))
        grads.append(diff / (2 * h))
    grad = torch.stack(grads, 1).reshape(c * d, *grid)  # channel-major: row k d + j is d v_k / d c_j
    return grad.float(), lap.float()


def field_derivatives(field: Callable[[torch.Tensor], torch.Tensor], coords: torch.Tensor):
    """Exact gradient ``(N, C d)`` (channel-major) and Laplacian ``(N, C)`` of a field by autograd."""
    x = coords.double().requires_grad_(True)
    with torch.enable_grad():
        out = field(x).double()
        grads, laps = [], []
        for k in range(out.shape[1]):
            (g,) = torch.autograd.grad(out[:, k].sum(), x, create_graph=True)
            lap = sum(torch.autograd.grad(g[:, j].sum(), x, retain_graph=True)[0][:, j] for j in range(x.shape[1]))
            grads.append(g.detach())
            laps.append(lap.detach())
    return torch.cat(grads, 1).float(), torch.stack(laps, 1).float()


def split_targets(y: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A signal's target rows ``(N, C (d + 2))`` -> values ``(N, C)``, gradient ``(N, C d)``, Laplacian ``(N, C)``."""
    d = y.shape[1] // channels - 2
    if d < 1 or y.shape[1] != channels * (d + 2):
        raise ValueError(f"signal targets need C (d + 2) columns for C = {channels}, got {y.shape[1]}")
    return y[:, :channels], y[:, channels : channels * (d + 1)], y[:, channels * (d + 1) :]


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
        field: the analytic function ``(N, d) -> (N, C)`` when there is one (its derivatives are then
            exact), else None (finite differences of the pixels).
    """

    name: str
    resolution: tuple[int, ...]
    channels: int
    sample_at: Callable[[tuple[int, ...]], torch.Tensor]
    source: str = ""
    field: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def values(self) -> torch.Tensor:
        """Values on the native grid, ``(C, *resolution)``."""
        return self.sample_at(self.resolution)

    @property
    def info(self) -> DataInfo:
        return DataInfo(self.name, (self.channels, *self.resolution), kind="signal", grid=self.resolution)

    def split_at(self, resolution: tuple[int, ...]) -> Split:
        """All pixels at ``resolution``: coordinates ``x`` (N, d), targets ``y`` (N, C (d + 2)): values,
        gradient, Laplacian (see the module's docstring)."""
        coords = coordinate_grid(resolution)
        values = self.sample_at(resolution)
        if self.field is not None:
            grad, lap = field_derivatives(self.field, coords)
        else:
            grad, lap = (values_to_rows(t) for t in grid_derivatives(values))
        return Split(coords, torch.cat([values_to_rows(values), grad, lap], 1))

    def to_dataset(self, eval_factor: int = 2) -> Dataset:
        """Dataset of kind ``"signal"``: train on the native grid, evaluate at ``eval_factor`` x resolution."""
        hi = tuple(n * eval_factor for n in self.resolution)
        held = self.split_at(hi)
        return Dataset(self.info, self.split_at(self.resolution), held, held, self.source, container=self)


# -- named signals ---------------------------------------------------------------------------------


def photo(name: str, size: int = 64, crop: int | None = None) -> Signal:
    """One of scikit-learn's two bundled photos (``china``, ``flower``; 427 x 640 RGB) as a signal.

    The centre square is cropped (the largest one, 427 x 427, or ``crop`` x ``crop`` pixels of the
    full-resolution photo), then resampled (Lanczos, antialiased) to ``size`` x ``size`` on demand at
    any resolution. ``crop=256, size=256`` keeps the photo's own pixels (SIREN's benchmark crop).
    Values: RGB in [0, 1].
    """
    from PIL import Image
    from sklearn.datasets import load_sample_image

    arr = load_sample_image(f"{name}.jpg")
    h, w = arr.shape[:2]
    s = min(h, w, crop or h, crop or w)
    top, left = (h - s) // 2, (w - s) // 2
    im = Image.fromarray(np.ascontiguousarray(arr[top : top + s, left : left + s]))

    def sample_at(res: tuple[int, ...]) -> torch.Tensor:
        img = im if (res[1], res[0]) == im.size else im.resize((res[1], res[0]), Image.LANCZOS)
        small = np.asarray(img, dtype=np.float32) / 255.0
        return torch.from_numpy(small.transpose(2, 0, 1).copy())

    what = f"the centre {s} x {s} crop of " if crop else ""
    return Signal(f"signal:{name}", (size, size), 3, sample_at, f"{what}sklearn.datasets.load_sample_image({name!r})")


def image_file(path, size: int | None = None) -> Signal:
    """A user's image file (PNG, JPEG, ...) as a signal: ``deepgen train siren --data photo.png``.

    Grey images give one channel, everything else RGB (alpha is dropped). The native grid is the
    image's own size, or, with ``size`` (``--image-size``), the size whose longer side is ``size``
    (aspect ratio kept). Other resolutions (the 2x evaluation grid, or a higher one) are resampled
    from the full-resolution file with an antialiasing Lanczos filter. Coordinates span [-1, 1] along
    both axes, whatever the aspect ratio.
    """
    from pathlib import Path

    from PIL import Image

    from deepgen.errors import DataError

    path = Path(path)
    try:
        with Image.open(path) as f:
            im = f.convert("L" if f.mode in ("1", "L", "I", "I;16", "F") else "RGB")
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not an image Pillow can read ({e})") from None
    w, h = im.size
    if size:
        k = size / max(h, w)
        h, w = max(1, round(h * k)), max(1, round(w * k))
    channels = 1 if im.mode == "L" else 3

    def sample_at(res: tuple[int, ...]) -> torch.Tensor:
        img = im if (res[1], res[0]) == im.size else im.resize((res[1], res[0]), Image.LANCZOS)
        arr = np.asarray(img, dtype=np.float32) / 255.0
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        return torch.from_numpy(arr.copy())

    return Signal(f"signal:{path.name}", (h, w), channels, sample_at, str(path))


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

    return Signal(f"signal:{name}", tuple(resolution), channels, sample_at, f"analytic field {name}", field)


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
