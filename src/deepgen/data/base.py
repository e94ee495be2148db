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

import numpy as np
import torch

from deepgen.errors import DataError


@dataclass(frozen=True)
class DataInfo:
    """Shape and meaning of one example, enough to build a model and to report its likelihood.

    Attributes:
        name: dataset name, e.g. ``"digits"`` or a file path.
        shape: shape of one example, ``(D,)`` for vectors or ``(C, H, W)`` for images.
        levels: number of discrete values per dimension (2 binary, 17 digits, 256 MNIST); ``None``
            for continuous data.
        num_classes: number of labels when the dataset has them.
        shift, scale: per-dimension standardisation applied to continuous data (``None``: none).
    """

    name: str
    shape: tuple[int, ...]
    levels: int | None = None
    num_classes: int | None = None
    shift: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None

    @property
    def dim(self) -> int:
        """Number of dimensions D of one example."""
        return math.prod(self.shape)

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

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
        return f"{self.name}: shape {tuple(self.shape)}, {kind}"

    @classmethod
    def from_dict(cls, d: dict) -> DataInfo:
        d = dict(d)
        d["shape"] = tuple(d["shape"])
        for k in ("shift", "scale"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "shape": [int(s) for s in self.shape],
            "levels": None if self.levels is None else int(self.levels),
            "num_classes": None if self.num_classes is None else int(self.num_classes),
            "shift": [float(v) for v in self.shift] if self.shift else None,
            "scale": [float(v) for v in self.scale] if self.scale else None,
        }


@dataclass
class Split:
    """One split: examples ``x`` (N, *shape) float32 and optional integer labels ``y`` (N,)."""

    x: torch.Tensor
    y: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, n: int | None) -> Split:
        if n is None or n >= len(self):
            return self
        return Split(self.x[:n], None if self.y is None else self.y[:n])


@dataclass
class Dataset:
    """A loaded dataset: three splits, its :class:`DataInfo`, and an optional per-batch transform.

    ``batch_transform(x, generator=None)`` runs on every training batch (dynamic binarisation draws
    fresh Bernoulli samples there); during training it uses the global torch RNG, which the trainer
    seeds and checkpoints.
    """

    info: DataInfo
    train: Split
    val: Split
    test: Split
    source: str = ""
    batch_transform: Callable[..., torch.Tensor] | None = field(default=None, repr=False)

    def train_for_evaluation(self, seed: int = 0) -> torch.Tensor:
        """Training examples as a model sees them: ``batch_transform`` applied once, reproducibly.

        Reference sets for FID/KID must be binarised like the training batches under dynamic
        binarisation, not the grey images kept for fresh draws.
        """
        if self.batch_transform is None:
            return self.train.x
        return self.batch_transform(self.train.x, torch.Generator().manual_seed(seed))


def check_finite(x: np.ndarray, source: str) -> None:
    """Raise DataError naming the first row/column holding NaN or inf."""
    if x.dtype.kind != "f":
        return
    bad = ~np.isfinite(x)
    if bad.any():
        idx = np.argwhere(bad)[0]
        what = "NaN" if np.isnan(x[tuple(idx)]) else "inf"
        where = f"row {idx[0]}" + (f", column {idx[1]}" if x.ndim == 2 else f", position {tuple(idx[1:])}")
        raise DataError(f"{source}: {what} at {where} ({int(bad.sum())} non-finite value(s) in all)")


def check_levels(x: np.ndarray, levels: int, source: str) -> None:
    """Raise DataError unless every value is an integer in ``0..levels-1`` (names the first bad one)."""
    bad = (x < 0) | (x > levels - 1) | (np.floor(x) != x)
    if bad.any():
        idx = np.argwhere(bad)[0]
        where = f"row {idx[0]}" + (f", column {idx[1]}" if x.ndim == 2 else f", position {tuple(idx[1:])}")
        expect = "0 or 1 (binary data)" if levels == 2 else f"an integer in 0..{levels - 1}"
        v = x[tuple(idx)].item()
        raise DataError(f"{source}: value {v!r} at {where} is not {expect}")


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
