"""Observation masks for completion (``model.complete(x, mask)``): True = observed, False = fill in.

>>> make_mask("bottom-half", (1, 8, 8)).sum().item()   # the top 4 rows of 8 are observed
32
"""

from __future__ import annotations

import numpy as np
import torch

from deepgen.errors import ConfigError, DataError

#: Named masks and what they hide. Images (C, H, W) accept all; vectors (D,) the first three.
MASKS = {
    "first-half": "hide the first half of the dimensions (in row-major order)",
    "last-half": "hide the second half of the dimensions (in row-major order)",
    "random:P": "hide each dimension with probability P (seeded)",
    "bottom-half": "hide the bottom half of an image",
    "top-half": "hide the top half of an image",
    "left-half": "hide the left half of an image",
    "right-half": "hide the right half of an image",
    "center": "hide the central square (half the height and width)",
    "PATH.npy": "a boolean/0-1 array of one example's shape (1 = observed)",
}


def make_mask(spec: str, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """A bool mask of ``shape`` (one example) from a name in :data:`MASKS`; True = observed."""
    shape = tuple(shape)
    d = int(np.prod(shape))
    m = torch.ones(shape, dtype=torch.bool)
    if spec in ("first-half", "last-half"):
        flat = m.view(-1)
        if spec == "first-half":
            flat[: d // 2] = False
        else:
            flat[d // 2 :] = False
        return m
    if spec.startswith("random:"):
        try:
            p = float(spec.split(":", 1)[1])
        except ValueError:
            raise ConfigError(f"mask {spec!r}: expected random:P with P a number in (0, 1)") from None
        if not 0 < p < 1:
            raise ConfigError(f"mask {spec!r}: P must lie in (0, 1)")
        return torch.rand(shape, generator=generator) >= p
    if spec.endswith(".npy"):
        try:
            arr = np.load(spec, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"{spec}: cannot read the mask ({e})") from None
        if tuple(arr.shape) != shape:
            raise DataError(f"{spec}: mask has shape {tuple(arr.shape)}, examples have {shape}")
        return torch.from_numpy(arr.astype(bool))
    if spec in ("bottom-half", "top-half", "left-half", "right-half", "center"):
        if len(shape) != 3:
            raise ConfigError(f"mask {spec!r} needs images (C, H, W); examples have shape {shape}: try last-half")
        _, h, w = shape
        if spec == "bottom-half":
            m[:, h // 2 :, :] = False
        elif spec == "top-half":
            m[:, : h // 2, :] = False
        elif spec == "left-half":
            m[:, :, : w // 2] = False
        elif spec == "right-half":
            m[:, :, w // 2 :] = False
        else:
            m[:, h // 4 : h // 4 + h // 2, w // 4 : w // 4 + w // 2] = False
        return m
    raise ConfigError(f"unknown mask {spec!r}; valid: {', '.join(MASKS)}")
