"""Image datasets: scikit-learn's 8x8 digits, MNIST (IDX), static binarised MNIST, image folders.

All return integer pixel levels as numpy arrays ``(N, C, H, W)`` plus labels; :mod:`deepgen.data`
turns them into model-space tensors (``k / (L - 1)``).
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from deepgen.errors import DataError

# MNIST files and their MD5s (the values torchvision checks; see ../shared/data/mnist/README.md).
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
BINARIZED_FILES = ("binarized_mnist_train.amat", "binarized_mnist_valid.amat", "binarized_mnist_test.amat")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's bundled 8x8 digits: uint8 levels 0..16 as (1797, 1, 8, 8) and labels (1797,)."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    return d.images.astype(np.uint8).reshape(-1, 1, 8, 8), d.target.astype(np.int64)


def digits_split(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The fixed digits split: a stratified 80/20 train/test split (random_state=0), 1437/360."""
    from sklearn.model_selection import train_test_split

    x, y = load_digits()
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=360, stratify=y, random_state=seed)
    return {"train": (xtr, ytr), "test": (xte, yte)}


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The data directory: ``--data-dir``, else ``$DEEPGEN_DATA``, else None."""
    d = explicit or os.environ.get("DEEPGEN_DATA")
    return Path(d).expanduser() if d else None


def _find(root: Path | None, names: list[str], subdirs: tuple[str, ...], what: str) -> Path:
    if root is None:
        raise DataError(f"{what} needs a data directory: pass --data-dir DIR or set DEEPGEN_DATA")
    for sub in subdirs:
        for name in names:
            p = root / sub / name
            if p.is_file():
                return p
    raise DataError(f"{what}: {names[0]} not found in {root} (looked in {', '.join(str(root / s) for s in subdirs)})")


def _read_maybe_gzipped(path: Path, what: str) -> bytes:
    """All bytes of ``path``, decompressed when it ends in ``.gz``; DataError when unreadable."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read {what} ({e})") from None


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzip or raw): uint8 images (N, rows, cols) or labels (N,), writable (a
    read-only view of the file's bytes would make ``torch.from_numpy`` warn on every load)."""
    raw = _read_maybe_gzipped(path, "IDX file")
    if len(raw) < 8:
        raise DataError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    magic, n = struct.unpack(">II", raw[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", raw[8:16])
        shape, offset = (n, rows, cols), 16
    elif magic == 2049:
        shape, offset = (n,), 8
    else:
        raise DataError(f"{path}: not an MNIST IDX file (magic number {magic})")
    expected = int(np.prod(shape))
    if len(raw) - offset != expected:
        raise DataError(f"{path}: truncated IDX file ({len(raw) - offset} of {expected} bytes)")
    return np.frombuffer(bytearray(raw), dtype=np.uint8, offset=offset).reshape(shape)


def load_mnist(root: Path | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MNIST from the four IDX files in ``root`` or ``root/mnist``: uint8 (N, 1, 28, 28), labels."""
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        paths = [
            _find(
                root,
                [f"{prefix}-{kind}-idx{d}-ubyte.gz", f"{prefix}-{kind}-idx{d}-ubyte"],
                ("", "mnist", "MNIST/raw"),
                "mnist",
            )
            for kind, d in (("images", 3), ("labels", 1))
        ]
        x, y = read_idx(paths[0]), read_idx(paths[1])
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"{paths[0]}: images and labels do not match ({x.shape} vs {y.shape})")
        out[split] = (x[:, None].copy(), y.astype(np.int64))
    return out


def read_amat(path: Path, dim: int = 784) -> np.ndarray:
    """Read a Larochelle ``.amat`` (optionally gzipped) text file of 0/1 values: uint8 (N, dim)."""
    raw = _read_maybe_gzipped(path, ".amat file")
    buf = np.frombuffer(raw, dtype=np.uint8)
    # Fast path: single-character values separated by one space or newline.
    if buf.size % (2 * dim) == 0 and buf.size > 0:
        vals, seps = buf[0::2], buf[1::2]
        seps = seps.reshape(-1, dim)
        if np.isin(vals, (48, 49)).all() and (seps[:, :-1] == 32).all() and (seps[:, -1] == 10).all():
            return (vals - 48).reshape(-1, dim)
    try:
        arr = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise DataError(f"{path}: not a .amat file of numbers ({e})") from None
    if arr.shape[1] != dim:
        raise DataError(f"{path}: rows have {arr.shape[1]} values, expected {dim}")
    if not np.isin(arr, (0, 1)).all():
        row = int(np.argwhere(~np.isin(arr, (0, 1)))[0, 0])
        raise DataError(f"{path}: row {row} has values other than 0/1")
    return arr.astype(np.uint8)


def load_binarized_mnist(root: Path | None) -> dict[str, np.ndarray]:
    """Static binarised MNIST (Salakhutdinov & Murray 2008; Larochelle's split): 50k/10k/10k."""
    out = {}
    for split, name in zip(("train", "val", "test"), BINARIZED_FILES):
        path = _find(root, [name + ".gz", name], ("", "binarized-mnist", "binarized_mnist"), "binarized-mnist")
        out[split] = read_amat(path).reshape(-1, 1, 28, 28)
    return out


def image_files(path: Path) -> list[Path]:
    """Every PNG/JPEG (and BMP, GIF, WebP) file under ``path``, recursively, in sorted order."""
    return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def folder_labels(path: Path) -> tuple[np.ndarray, list[str]] | None:
    """Class labels of an image folder laid out one subfolder per class (``DIR/cat/1.png``), or None.

    Labels are the index of each image's top-level subfolder in sorted order, aligned with
    :func:`load_image_folder`'s rows; None unless every image sits in a subfolder and there are at
    least two of them (a flat folder is unlabelled).
    """
    files = image_files(path)
    tops = [f.relative_to(path).parts for f in files]
    if not files or any(len(t) < 2 for t in tops):
        return None
    classes = sorted({t[0] for t in tops})
    if len(classes) < 2:
        return None
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[t[0]] for t in tops], dtype=np.int64), classes


def load_image_folder(path: Path, size: int | None, channels: int | None) -> np.ndarray:
    """Every PNG/JPEG under ``path`` (sorted, recursive) as uint8 (N, C, size, size).

    Images are resized (bilinear) to ``size`` x ``size``; without ``size`` all images must already
    share one size. ``channels`` 1 converts to grey, 3 to RGB; by default grey if every image is.
    """
    from PIL import Image, UnidentifiedImageError

    files = image_files(path)
    if not files:
        raise DataError(f"{path}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
    images = []
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                images.append(im.copy())
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"{f}: cannot read image ({e})") from None
    if channels is None:
        channels = 1 if all(im.mode in ("L", "1", "I", "I;16") for im in images) else 3
    if size is None:
        sizes = {im.size for im in images}
        if len(sizes) > 1:
            raise DataError(f"{path}: images have {len(sizes)} different sizes; pass --image-size N")
    mode = "L" if channels == 1 else "RGB"
    arrs = []
    for im in images:
        im = im.convert(mode)
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
        arrs.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    return np.stack(arrs)


def download_mnist(root: str | os.PathLike, *, quiet: bool = False) -> Path:
    """Download the four MNIST files into ``root/mnist`` and check their MD5s.

    For users with internet access only: tests and the demo never call it.
    """
    from deepgen.download import download_verified

    dest = Path(root).expanduser() / "mnist"
    for name, md5 in MNIST_FILES.items():
        download_verified([m + name for m in MNIST_MIRRORS], dest / name, md5, algorithm="md5", quiet=quiet)
    return dest
