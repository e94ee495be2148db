"""User files (``.npy``, ``.csv``, image folders) into compact :class:`~deepgen.data.base.Split` objects.

Which values are discrete is decided here, in this order:

1. ``DataSpec.levels`` (``--levels L``): integers ``0..L-1``, checked.
2. A trained run's :class:`DataInfo` (scoring a new file with ``deepgen eval``/``score``): the run's levels.
3. ``DataSpec.continuous`` (``--continuous``): real-valued, standardised column-wise.
4. Image folders and uint8 image stacks ``(N, [C,] H, W)``: 8-bit pixels, 256 levels.
5. Otherwise, when every value is an integer in ``0..K`` with ``K <= 255``: discrete with ``max(K+1, 2)``
   levels (a 0/1 file is binary). A continuous density on binary data is degenerate (it can grow
   without bound on two points), so this is the safe reading; deepgen says so in one line on stderr,
   with how to choose otherwise. Integers that are negative or above 255 stay continuous, also said in
   one line (pass ``--levels`` after shifting them to ``0..L-1`` to model them as discrete).

Discrete data are stored as uint8 codes until batched. A ``.npy`` above
:data:`deepgen.data.files.MMAP_BYTES` is memory-mapped; its train/validation split is then contiguous
(the last ``val_fraction`` of rows is held out) so that the training rows stay a view of the file
rather than a shuffled in-memory copy. Shuffle such a file beforehand if its row order means something.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from deepgen.data import images
from deepgen.data.base import DataInfo, Split, _row_chunks, check_levels, code_dtype
from deepgen.data.files import read_table, split_indices, standardisation
from deepgen.errors import DataError


def _is_mapped(arr: np.ndarray) -> bool:
    return isinstance(arr, np.memmap)


def integer_range(arr: np.ndarray) -> tuple[float, float] | None:
    """``(min, max)`` when every value is an integer, else None (read in chunks: fine for mapped files)."""
    lo, hi = np.inf, -np.inf
    for _, chunk in _row_chunks(arr):
        if arr.dtype.kind == "f" and not np.array_equal(np.floor(chunk), chunk):
            return None
        lo, hi = min(lo, float(chunk.min())), max(hi, float(chunk.max()))
    return lo, hi


def infer_levels(arr: np.ndarray, source: str, *, quiet: bool = False) -> int | None:
    """Levels assumed for an integer-valued array without ``--levels`` (None: continuous); says so in one line."""
    rng = integer_range(arr)
    if rng is None:
        return None
    lo, hi = rng
    if lo < 0 or hi > 255:
        why = f"negative values (min {lo:g})" if lo < 0 else f"values up to {hi:g} (above 255)"
        note = (
            f"deepgen: {source}: every value is an integer, but with {why} it is treated as continuous and "
            "standardised; for discrete data shift it to 0..L-1 and pass --levels L"
        )
        levels = None
    else:
        levels = max(int(hi) + 1, 2)
        what = "binary (2 levels)" if levels == 2 else f"discrete with {levels} levels (0..{levels - 1})"
        note = (
            f"deepgen: {source}: every value is an integer in {lo:g}..{hi:g}, so it is treated as {what}; "
            "pass --levels L to choose the levels, or --continuous to standardise it as real-valued data"
        )
    if not quiet:
        print(note, file=sys.stderr)
    return levels


#: Channels an image stack may have: every image consumer (grids, feature networks) reads grey or RGB.
IMAGE_CHANNELS = (1, 3)


def check_image_channels(arr: np.ndarray, source: str) -> None:
    """Refuse image stacks (N, C, H, W) with C other than 1 or 3, at load time, in one line.

    Models would train on them, but sample grids, feature networks and reports only know grey and
    RGB, so the run would fail at its end; a (N, H, W, C) stack saved channels last is said so.
    """
    if arr.ndim != 4 or arr.shape[1] in IMAGE_CHANNELS:
        return
    c = arr.shape[1]
    if arr.shape[-1] in IMAGE_CHANNELS and c == arr.shape[2]:
        hint = f"; it looks like channels last {arr.shape[1:]}: save numpy.moveaxis(x, -1, 1)"
    else:
        hint = "; reshape it to (N, D) to model it as a table of numbers"
    raise DataError(
        f"{source}: images must be (N, C, H, W) with 1 (grey) or 3 (RGB) channels, "
        f"got {c} channels in shape {arr.shape}{hint}"
    )


def read_user_array(spec, info: DataInfo | None = None) -> tuple[np.ndarray, int | None]:
    """Raw array of a user path (``spec.name``) and its number of levels (None: continuous); see module docstring."""
    path = Path(spec.name).expanduser()
    if path.is_dir():
        if spec.levels is not None:
            raise DataError(
                f"{path}: --levels does not apply to image folders (8-bit pixels); "
                "use --binarize threshold or dynamic for binary data"
            )
        return images.load_image_folder(path, spec.image_size, spec.channels), 256
    arr = read_table(path)
    if arr.ndim == 3:
        arr = arr[:, None]
    check_image_channels(arr, str(path))
    levels = spec.levels
    if levels is None and info is not None:
        # a run decides: its levels, or 2 -> the grey source's levels are inferred below when binarising
        if spec.binarize == "none" or info.levels is None:
            levels, decided = info.levels, True
        else:
            decided = False
    else:
        decided = levels is not None
    if levels is None and not decided and not spec.continuous:
        if arr.dtype == np.uint8 and arr.ndim == 4:
            levels = 256
        else:
            levels = infer_levels(arr, str(path), quiet=info is not None)
    if levels is not None:
        check_levels(arr, levels, str(path))
    return arr, levels


def _codes(arr: np.ndarray, rows, levels: int) -> torch.Tensor:
    """Integer codes of ``arr[rows]`` in the compact dtype; a view (no copy) when the file already is uint8."""
    dtype = code_dtype(levels)
    np_dtype = np.uint8 if dtype == torch.uint8 else np.int32
    if isinstance(rows, slice):
        part = arr[rows]
        if part.dtype == np_dtype:
            return torch.from_numpy(part)
        out = np.empty(part.shape, np_dtype)
        for start, chunk in _row_chunks(part):
            out[start : start + len(chunk)] = chunk
        return torch.from_numpy(out)
    return torch.from_numpy(arr[rows].astype(np_dtype, copy=False))


def _chunked_standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and std in float64 accumulated over row chunks (a mapped file is never copied whole)."""
    # Chan et al.'s parallel update of (count, mean, sum of squared deviations): the one-pass
    # E[x^2] - E[x]^2 loses every digit when the mean is large against the spread (1e8 + N(0, 1)).
    n, mean, m2 = 0, 0.0, 0.0
    for _, chunk in _row_chunks(x):
        c = chunk.astype(np.float64)
        k, cm = len(c), c.mean(0)
        cm2 = ((c - cm) ** 2).sum(0)
        delta = cm - mean
        mean = mean + delta * k / (n + k)
        m2 = m2 + cm2 + delta**2 * n * k / (n + k)
        n += k
    std = np.sqrt(m2 / n)
    std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    return mean, std


def _continuous_info(spec, arr: np.ndarray) -> DataInfo:
    shape = tuple(arr.shape[1:])
    if not spec.standardize:
        return DataInfo(spec.name, shape)
    mean, std = _chunked_standardisation(arr) if _is_mapped(arr) else standardisation(arr.astype(np.float64))
    return DataInfo(spec.name, shape, None, None, tuple(map(float, mean.ravel())), tuple(map(float, std.ravel())))


def make_split(spec, arr: np.ndarray, rows, levels: int | None, info: DataInfo | None) -> tuple[Split, DataInfo]:
    """A :class:`Split` of ``arr[rows]`` (rows: index array or slice) and the info describing it.

    ``info``: reuse its standardisation (a run's, or the train split's for validation rows).
    """
    src = spec.name
    shape = tuple(arr.shape[1:])
    if info is not None and shape != tuple(info.shape):
        raise DataError(f"{src}: examples have shape {shape}, the run was trained on {info.shape}")
    mapped = _is_mapped(arr) and isinstance(rows, slice)
    if levels is not None:
        codes = _codes(arr, rows, levels)
        split = Split(codes, levels=levels, mapped=mapped and codes.dtype == torch.uint8 and arr.dtype == np.uint8)
        return split, info or DataInfo(src, shape, levels)
    part = arr[rows]
    if info is None:
        info = _continuous_info(spec, part)
    if mapped:
        # raw values stay on disk; decode() standardises each batch
        on_disk = part.dtype.kind == "f" and part.dtype.itemsize <= 8
        view = torch.from_numpy(part if on_disk else np.asarray(part, np.float32))
        if info.shift is None:
            return Split(view, mapped=on_disk), info
        shift = torch.tensor(info.shift, dtype=torch.float32).reshape(shape)
        scale = torch.tensor(info.scale, dtype=torch.float32).reshape(shape)
        return Split(view, shift=shift, scale=scale, mapped=on_disk), info
    return Split(torch.from_numpy(info.standardize(part.astype(np.float64)).astype(np.float32))), info


def train_val_rows(arr: np.ndarray, val_fraction: float, seed: int):
    """Row selections for train and validation: a seeded shuffle, or contiguous slices for a mapped file."""
    if _is_mapped(arr):
        _, va = split_indices(len(arr), val_fraction, seed)
        n_tr = len(arr) - len(va)
        return slice(0, n_tr), slice(n_tr, len(arr))
    return split_indices(len(arr), val_fraction, seed)
