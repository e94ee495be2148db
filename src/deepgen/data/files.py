"""User data files: ``.npy`` arrays and ``.csv`` tables, read with errors that name row and column."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from deepgen.data.base import check_examples, check_finite
from deepgen.errors import DataError, shorten

#: ``.npy`` files larger than this are memory-mapped (copy-on-write: the file is never modified) instead
#: of read into memory; rows are then read from disk as they are indexed.
MMAP_BYTES = 512 * 2**20


def read_npy(path: Path) -> np.ndarray:
    """A numeric array from ``.npy`` (no pickles: object arrays are refused); memory-mapped when large."""
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic != b"\x93NUMPY":  # else np.load tries to unpickle it and talks about "pickled data"
        what = "a zip archive (.npz?)" if magic.startswith(b"PK") else "no NUMPY header"
        raise DataError(f"{path}: not a .npy file ({what}); save arrays with numpy.save")
    mmap = "c" if path.stat().st_size > MMAP_BYTES else None
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode=mmap)
    except ValueError as e:
        raise DataError(f"{path}: not a plain numeric .npy array ({shorten(str(e))})") from None
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read .npy file ({e or 'empty or truncated'})") from None
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{path}: array has dtype {arr.dtype}; expected numbers")
    return arr


def read_csv(path: Path) -> np.ndarray:
    """A float64 table from CSV; a first row of non-numbers is taken as a header."""
    try:
        with open(path, newline="") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read CSV ({e})") from None
    if not rows:
        raise DataError(f"{path}: file is empty")
    first_line = 1

    def parse(cell: str) -> float:
        return float(cell.strip())

    try:
        [parse(c) for c in rows[0]]
    except ValueError:
        rows, first_line = rows[1:], 2  # header row
    if not rows:
        raise DataError(f"{path}: has a header but no data rows")
    width = len(rows[0])
    out = np.empty((len(rows), width), dtype=np.float64)
    for i, r in enumerate(rows):
        if len(r) != width:
            raise DataError(f"{path}: row {i} (line {i + first_line}) has {len(r)} columns, expected {width}")
        for j, c in enumerate(r):
            try:
                out[i, j] = parse(c)
            except ValueError:
                raise DataError(f"{path}: row {i} (line {i + first_line}), column {j}: {c!r} is not a number") from None
    return out


def read_table(path: Path) -> np.ndarray:
    """Read ``.npy`` or ``.csv`` and check it: finite, non-empty, 2-D table or image stack."""
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    if path.suffix == ".npy":
        arr = read_npy(path)
    elif path.suffix in (".csv", ".txt"):
        arr = read_csv(path)
    else:
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; use .npy, .csv or a folder of images")
    if arr.ndim not in (2, 3, 4):
        raise DataError(
            f"{path}: array has shape {arr.shape}; expected (examples, features), (N, H, W) or (N, C, H, W)"
        )
    check_examples(arr, str(path), min_examples=1)
    check_finite(arr, str(path))
    return arr


def standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std (float64); a constant column gets scale 1."""
    mean = x.mean(0)
    std = x.std(0)
    std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    return mean, std


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed shuffle of ``range(n)`` split into train and validation indices."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = 0 if n < 2 or val_fraction <= 0 else max(1, int(math.floor(n * val_fraction)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
