"""What every dataset is: tensors of examples plus a :class:`DataInfo` that says how to read them.

Conventions (the rest of deepgen relies on them):

* Images are ``(N, C, H, W)`` float32; vectors are ``(N, D)``.
* Discrete data with ``L`` levels are handed to models as ``k / (L - 1)`` for integer ``k`` in
  ``0..L-1``, so values lie in ``[0, 1]`` (binary data is exactly ``{0, 1}``). A model's
  ``log_prob`` on discrete data is a log *probability mass* over the ``L ** D`` lattice, which is what
  makes bits/dim comparable across families.
* Continuous data may be standardised (``x_model = (x_raw - shift) / scale``); ``DataInfo.log_scale``
  is ``sum(log scale)``, the log-determinant that converts model-space densities back to raw units.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from deepgen.errors import DataError

#: The data kinds deepgen knows; evaluation, plots and ``deepgen sample`` ask ``DataInfo.kind``.
KINDS = ("examples", "signal", "scene", "domains")


@dataclass(frozen=True)
class DataInfo:
    """Shape and meaning of one example, enough to build a model and to report its likelihood.

    Attributes:
        name: dataset name, e.g. ``"digits"`` or a file path.
        shape: shape of one example, ``(D,)`` for vectors or ``(C, H, W)`` for images. For a signal,
            the shape of its values on the native grid (``(C, H, W)`` or ``(C, L)``); for a scene,
            one view ``(3, H, W)``; for two domains, an example of domain A.
        levels: number of discrete values per dimension (2 binary, 17 digits, 256 MNIST); ``None``
            for continuous data (signals and scenes have float targets: always ``None``).
        num_classes: number of labels when the dataset has them.
        shift, scale: per-dimension standardisation applied to continuous data (``None``: none).
        kind: ``"examples"`` (i.i.d. examples, the default), ``"signal"`` (one image or field as
            coordinates -> values), ``"scene"`` (posed views, batches of camera rays) or ``"domains"``
            (two unpaired example sets A and B). See :mod:`deepgen.data.signals`, ``scenes``, ``domains``.
        grid: native resolution of a signal or of a scene's views, ``(H, W)`` or ``(L,)``.
        camera: a scene's pinhole intrinsics ``(fx, fy, cx, cy)`` in pixels at ``grid`` resolution.
        bounds: a scene's ``(near, far)`` ray distances (world units).
        domain_b: the :class:`DataInfo` of domain B (kind ``"domains"``); ``self`` describes domain A.
    """

    name: str
    shape: tuple[int, ...]
    levels: int | None = None
    num_classes: int | None = None
    shift: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None
    kind: str = "examples"
    grid: tuple[int, ...] | None = None
    camera: tuple[float, float, float, float] | None = None
    bounds: tuple[float, float] | None = None
    domain_b: DataInfo | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise DataError(f"unknown data kind {self.kind!r}; expected one of {', '.join(KINDS)}")

    @property
    def dim(self) -> int:
        """Number of dimensions D of one example."""
        return math.prod(self.shape)

    @property
    def is_examples(self) -> bool:
        return self.kind == "examples"

    @property
    def is_signal(self) -> bool:
        return self.kind == "signal"

    @property
    def is_scene(self) -> bool:
        return self.kind == "scene"

    @property
    def is_domains(self) -> bool:
        return self.kind == "domains"

    @property
    def is_image(self) -> bool:
        """Examples that are images ``(C, H, W)`` (domains count: each domain is a set of examples).

        False for signals and scenes: their training rows are coordinates or rays, not images.
        """
        return self.kind in ("examples", "domains") and len(self.shape) == 3

    @property
    def coord_dim(self) -> int | None:
        """Coordinate dimension d of a signal (2 for an image), 6 for a scene's rays (origin, direction)."""
        if self.kind == "signal":
            return len(self.grid)
        return 6 if self.kind == "scene" else None

    @property
    def row_shape(self) -> tuple[int, ...]:
        """Shape of one training row ``x``: an example (examples, domain A), a coordinate ``(d,)``, a ray ``(6,)``."""
        return (self.coord_dim,) if self.kind in ("signal", "scene") else tuple(self.shape)

    @property
    def target_shape(self) -> tuple[int, ...] | None:
        """Shape of one float target ``y`` of a signal or scene, ``(C,)``; None for other kinds (labels or none)."""
        return (self.channels,) if self.kind in ("signal", "scene") else None

    @property
    def channels(self) -> int | None:
        """Value channels C of a signal or scene (3 for RGB)."""
        return self.shape[0] if self.kind in ("signal", "scene") else None

    @property
    def is_binary(self) -> bool:
        return self.levels == 2

    @property
    def is_discrete(self) -> bool:
        return self.levels is not None

    @property
    def log_scale(self) -> float:
        """``sum(log scale)``: add to a model-space NLL (nats) to get the NLL in raw data units."""
        return float(np.log(np.asarray(self.scale, dtype=np.float64)).sum()) if self.scale else 0.0

    def standardize(self, x: np.ndarray) -> np.ndarray:
        """Raw continuous values -> model space ``(x - shift) / scale`` (identity without scale)."""
        if self.shift is None:
            return x
        shape = (1, *self.shape)
        return (x - np.asarray(self.shift).reshape(shape)) / np.asarray(self.scale).reshape(shape)

    def to_raw(self, x: torch.Tensor) -> np.ndarray:
        """Model space -> the data's own units: integer levels ``0..L-1``, or un-standardised values."""
        if self.is_discrete:
            k = torch.round(x * (self.levels - 1)).cpu().numpy()
            return k.astype(np.uint8 if self.levels <= 256 else np.int64)
        arr = x.detach().cpu().double().numpy()
        if self.shift is None:
            return arr
        shape = (1, *self.shape)
        return arr * np.asarray(self.scale).reshape(shape) + np.asarray(self.shift).reshape(shape)

    def describe(self) -> str:
        kind = "continuous" if self.levels is None else ("binary" if self.levels == 2 else f"{self.levels} levels")
        if self.kind == "signal":
            return f"{self.name}: signal, {self.coord_dim}-D coordinates -> {self.channels} values, grid {self.grid}"
        if self.kind == "scene":
            return f"{self.name}: scene, views {tuple(self.shape)}, rays (origin, direction) -> RGB"
        if self.kind == "domains":
            return f"{self.name}: two domains, A {tuple(self.shape)} {kind}, B {tuple(self.domain_b.shape)}"
        return f"{self.name}: shape {tuple(self.shape)}, {kind}"

    @classmethod
    def from_dict(cls, d: dict) -> DataInfo:
        """Inverse of :meth:`to_dict`; checkpoints written before data kinds existed load as ``"examples"``."""
        d = dict(d)
        d["shape"] = tuple(d["shape"])
        for k in ("shift", "scale", "grid", "camera", "bounds"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        if d.get("domain_b") is not None:
            d["domain_b"] = cls.from_dict(d["domain_b"])
        return cls(**d)

    def to_dict(self) -> dict:
        """JSON-ready dict. Kind-specific fields appear only when set, so an examples dataset's dict is
        exactly the pre-kinds one (a resumed old run compares equal)."""
        out = {
            "name": self.name,
            "shape": [int(s) for s in self.shape],
            "levels": None if self.levels is None else int(self.levels),
            "num_classes": None if self.num_classes is None else int(self.num_classes),
            "shift": [float(v) for v in self.shift] if self.shift else None,
            "scale": [float(v) for v in self.scale] if self.scale else None,
        }
        if self.kind != "examples":
            out["kind"] = self.kind
        for k in ("grid", "camera", "bounds"):
            v = getattr(self, k)
            if v is not None:
                out[k] = [int(a) if k == "grid" else float(a) for a in v]
        if self.domain_b is not None:
            out["domain_b"] = self.domain_b.to_dict()
        return out


def code_dtype(levels: int) -> torch.dtype:
    """Storage dtype of integer codes ``0..levels-1``: uint8 up to 256 levels, else int32."""
    return torch.uint8 if levels <= 256 else torch.int32


class Split:
    """One split: rows held compactly in ``storage``, decoded to model space on demand.

    ``storage`` is ``(N, *row_shape)``:

    * discrete data (``levels`` set): integer codes ``k`` in ``0..levels-1``, uint8 for up to 256
      levels (int32 above). :meth:`decode` gives float32 ``k / (levels - 1)``. MNIST's 60k images are
      47 MB as uint8 instead of 188 MB as float32.
    * continuous data: float rows. Usually already in model space (float32, :meth:`decode` is a cast);
      a large memory-mapped file keeps its raw values and :meth:`decode` applies ``(t - shift) / scale``.

    ``storage`` may be a tensor over a memory-mapped ``.npy`` (copy-on-write, the file is never written):
    rows are read from disk only when indexed.

    ``y``: integer labels ``(N,)`` for examples, float targets ``(N, C)`` for signals and scenes
    (pixel colours), or ``None``.

    The training engine moves ``storage`` to its device once and calls ``decode(storage[idx])`` per
    batch, so batches are float32 only while they exist. ``x`` decodes the whole split (float32), for
    callers that want every row at once. ``Split(x_float32)`` and ``Split(x=...)`` still build a
    continuous split, as before storage existed.
    """

    def __init__(
        self,
        storage: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        *,
        levels: int | None = None,
        shift: torch.Tensor | None = None,
        scale: torch.Tensor | None = None,
        x: torch.Tensor | None = None,
        mapped: bool = False,
    ):
        if storage is None:
            storage = x
        if storage is None:
            raise TypeError("Split needs storage (or x)")
        if levels is not None and storage.dtype.is_floating_point:
            raise TypeError("a discrete Split stores integer codes, got floats; use Split.from_codes or to_codes")
        self.storage = storage
        self.y = y
        self.levels = levels
        self.shift, self.scale = shift, scale
        #: storage is a view of a memory-mapped file: index it on the CPU, then move the batch to the device
        self.mapped = mapped

    @classmethod
    def from_codes(cls, k: np.ndarray | torch.Tensor, levels: int, y: torch.Tensor | None = None) -> Split:
        """A discrete split from integer levels ``k`` (numpy or torch, any integer or integral float dtype)."""
        t = torch.as_tensor(np.asarray(k)) if not isinstance(k, torch.Tensor) else k
        dtype = code_dtype(levels)
        if t.dtype != dtype:
            t = t.to(dtype)
        return cls(t, y, levels=levels)

    def decode(self, t: torch.Tensor) -> torch.Tensor:
        """Stored rows ``t`` (any rows of ``storage``, on any device) -> float32 model space."""
        if self.levels is not None:
            return t.to(torch.float32) / float(self.levels - 1)
        t = t.to(torch.float32)
        if self.shift is not None:
            t = (t - self.shift.to(t.device)) / self.scale.to(t.device)
        return t

    @property
    def x(self) -> torch.Tensor:
        """Every row decoded, float32 ``(N, *row_shape)`` (a new tensor unless storage is model-space float32)."""
        if self.levels is None and self.shift is None and self.storage.dtype == torch.float32:
            return self.storage
        return self.decode(self.storage)

    @property
    def is_discrete(self) -> bool:
        return self.levels is not None

    def __len__(self) -> int:
        return int(self.storage.shape[0])

    def take(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Rows ``idx`` (int64 indices) as ``(x float32, y or None)``."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        x = self.decode(self.storage[idx])
        return x, (None if self.y is None else self.y[idx])

    def draw(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` rows drawn uniformly with replacement (the global RNG without ``generator``)."""
        return self.take(torch.randint(0, len(self), (n,), generator=generator))

    def subset(self, n: int | None) -> Split:
        if n is None or n >= len(self):
            return self
        return self.with_storage(self.storage[:n], None if self.y is None else self.y[:n])

    def with_storage(self, storage: torch.Tensor, y: torch.Tensor | None = None) -> Split:
        """A split with other rows but the same encoding (levels, standardisation)."""
        return Split(storage, y, levels=self.levels, shift=self.shift, scale=self.scale, mapped=self.mapped)

    def __repr__(self) -> str:
        enc = f"levels={self.levels}" if self.levels is not None else "continuous"
        return f"Split(n={len(self)}, storage {self.storage.dtype} {tuple(self.storage.shape[1:])}, {enc})"


@dataclass
class Dataset:
    """A loaded dataset: three splits, its :class:`DataInfo`, and an optional per-batch transform.

    ``batch_transform(x, generator=None)`` runs on every decoded training batch (dynamic binarisation
    draws fresh Bernoulli samples there); during training it uses the global torch RNG, which the
    trainer seeds and checkpoints.

    ``container``: the whole object the splits were cut from, for kinds beyond i.i.d. examples: a
    :class:`~deepgen.data.signals.Signal` (render at any resolution), a
    :class:`~deepgen.data.scenes.Scene` (views, poses, rays) or a
    :class:`~deepgen.data.domains.DomainPair` (domain B's splits: ``container.b.train.draw(n)``).
    """

    info: DataInfo
    train: Split
    val: Split
    test: Split
    source: str = ""
    batch_transform: Callable[..., torch.Tensor] | None = field(default=None, repr=False)
    container: Any = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return self.info.kind

    def draw_b(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Kind ``"domains"``: ``n`` domain-B training examples (float32, model space, B's ``batch_transform``
        applied), drawn uniformly with replacement independently of any A batch; the global RNG without
        ``generator``. The engine passes them as ``y``: ``model.loss(x_a, x_b)``."""
        if self.kind != "domains":
            raise DataError(f"{self.info.name}: draw_b needs two domains; this data kind is {self.kind!r}")
        b = self.container.b
        x, _ = b.train.draw(n, generator)
        return x if b.batch_transform is None else b.batch_transform(x, generator)

    def train_for_evaluation(self, seed: int = 0) -> torch.Tensor:
        """Training examples as a model sees them: ``batch_transform`` applied once, reproducibly.

        Reference sets for FID/KID must be binarised like the training batches under dynamic
        binarisation, not the grey images kept for fresh draws.
        """
        if self.batch_transform is None:
            return self.train.x
        return self.batch_transform(self.train.x, torch.Generator().manual_seed(seed))


def _row_chunks(x: np.ndarray, values: int = 2**24):
    """Row slices of ~``values`` values each, so checks of a memory-mapped file need no full-size mask."""
    rows = max(1, values // max(1, math.prod(x.shape[1:])))
    for start in range(0, x.shape[0], rows):
        yield start, x[start : start + rows]


def _where(idx, ndim: int) -> str:
    idx = [int(i) for i in idx]  # plain ints: a numpy scalar's repr would print as np.int64(0)
    return f"row {idx[0]}" + (f", column {idx[1]}" if ndim == 2 else f", position {tuple(idx[1:])}")


def check_finite(x: np.ndarray, source: str) -> None:
    """Raise DataError naming the first row/column holding NaN or inf."""
    if x.dtype.kind != "f" or x.ndim == 0:
        return
    for start, chunk in _row_chunks(x):
        bad = ~np.isfinite(chunk)
        if bad.any():
            idx = np.argwhere(bad)[0]
            what = "NaN" if np.isnan(chunk[tuple(idx)]) else "inf"
            idx[0] += start
            total = sum(int((~np.isfinite(c)).sum()) for _, c in _row_chunks(x))
            raise DataError(f"{source}: {what} at {_where(idx, x.ndim)} ({total} non-finite value(s) in all)")


def check_levels(x: np.ndarray, levels: int, source: str) -> None:
    """Raise DataError unless every value is an integer in ``0..levels-1`` (names the first bad one)."""
    for start, chunk in _row_chunks(x):
        bad = (chunk < 0) | (chunk > levels - 1) | (np.floor(chunk) != chunk)
        if bad.any():
            idx = np.argwhere(bad)[0]
            v = chunk[tuple(idx)].item()
            idx[0] += start
            expect = "0 or 1 (binary data)" if levels == 2 else f"an integer in 0..{levels - 1}"
            raise DataError(f"{source}: value {v!r} at {_where(idx, x.ndim)} is not {expect}")


def check_examples(x: np.ndarray, source: str, min_examples: int = 1) -> None:
    """Raise DataError for empty data or data with fewer examples than needed."""
    if x.ndim == 0 or x.shape[0] < min_examples:
        n = 0 if x.ndim == 0 else x.shape[0]
        raise DataError(f"{source}: has {n} example(s); need at least {min_examples}")
    if x.ndim > 1 and 0 in x.shape[1:]:
        raise DataError(f"{source}: examples have an empty dimension (shape {x.shape})")


def to_model_space(k: np.ndarray, levels: int) -> torch.Tensor:
    """Integer levels ``k`` -> float32 ``k / (L - 1)`` in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(k, dtype=np.float32) / np.float32(levels - 1))
