"""Named datasets and user files, loaded into :class:`Dataset` objects.

>>> from deepgen.data import DataSpec, load_dataset
>>> ds = load_dataset(DataSpec("digits"))
>>> ds.info.shape, ds.info.levels, len(ds.train)
((1, 8, 8), 17, 1294)

Names: the 2D toys (``moons``, ``circles``, ``8gaussians``, ``25gaussians``, ``checkerboard``,
``2spirals``, ``pinwheel``, ``swissroll``), ``digits`` (bundled), ``mnist`` and ``binarized-mnist``
(from ``--data-dir`` / ``$DEEPGEN_DATA``), signals ``signal:china``, ``signal:flower``, ``signal:waves``,
``signal:chirp`` (:mod:`deepgen.data.signals`), the scene ``scene:spheres`` (:mod:`deepgen.data.scenes`),
unpaired domains ``domains:digits-inverted``, ``domains:digits-transposed`` (:mod:`deepgen.data.domains`),
or a path: ``.npy``, ``.csv`` or a folder of images (:mod:`deepgen.data.user_files`), or one image file
(``.png``, ``.jpg``, ...), which is a signal (:func:`deepgen.data.signals.image_file`).

Every :class:`Dataset` has a kind (``ds.info.kind``): ``examples``, ``signal``, ``scene`` or ``domains``;
callers ask it (and ``info.row_shape`` / ``info.target_shape``) rather than guessing from shapes.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from deepgen.config import check_positive
from deepgen.data import domains, images, scenes, signals, toy2d
from deepgen.data.base import (
    DataInfo,
    Dataset,
    Split,
    _where,
    check_examples,
    check_finite,
)
from deepgen.data.files import split_indices
from deepgen.data.transforms import binarize_dynamic
from deepgen.data.user_files import make_split, read_user_array, train_val_rows
from deepgen.errors import DataError, UnknownNameError

__all__ = ["DataInfo", "DataSpec", "Dataset", "Split", "load_dataset", "load_eval_split", "dataset_table"]


@dataclass(frozen=True)
class DataSpec:
    """Which data to load and how; stored in every run so that a run can reload its data.

    Attributes:
        name: a dataset name (see :func:`dataset_table`) or a path to ``.npy``/``.csv``/image folder.
        data_dir: folder holding MNIST files (default ``$DEEPGEN_DATA``).
        binarize: ``"dynamic"`` draws Bernoulli(x) afresh for every training batch (test data is
            binarised once with a fixed seed); ``"threshold"`` uses ``x > 0.5``.
        image_size, channels: resize image folders to ``image_size`` squared, grey (1) or RGB (3).
        levels: declare that a file's values are integers ``0..levels-1`` (2 for binary data). Without it,
            a file whose values are all integers in 0..255 is read as discrete (one line on stderr says so).
        continuous: read a file as real-valued data even when every value is an integer (CLI ``--continuous``).
        standardize: standardise continuous files column-wise with train-split statistics.
        n_train: training points drawn for the 2D toys (validation 5,000, test 10,000).
        val_fraction: share of a file (or of digits/MNIST train) held out for validation.
        seed: seed for the toy draws and the file split.
        classes: keep only the examples with these labels, in every split (labelled data only): a
            model of the other classes is the usual setting for anomaly detection (``deepgen anomaly``).
    """

    name: str
    data_dir: str | None = None
    binarize: Literal["none", "dynamic", "threshold"] = "none"
    image_size: int | None = None
    channels: int | None = None
    levels: int | None = None
    standardize: bool = True
    continuous: bool = False
    n_train: int = 50_000
    val_fraction: float = 0.1
    seed: int = 0
    classes: tuple[int, ...] | None = None

    def __post_init__(self):
        check_positive(self, "image_size", "n_train")
        if self.classes is not None:
            if isinstance(self.classes, int):  # a single class from a config file
                object.__setattr__(self, "classes", (self.classes,))
            object.__setattr__(self, "classes", tuple(sorted({int(c) for c in self.classes})))
            if not self.classes or min(self.classes) < 0:
                raise DataError(f"classes must be labels >= 0, got {self.classes}")
        if self.levels is not None and self.levels < 2:
            raise DataError(f"levels must be >= 2, got {self.levels}")
        if self.levels is not None and self.continuous:
            raise DataError("levels and continuous contradict each other: pass one of --levels L, --continuous")
        if self.channels not in (None, 1, 3):
            raise DataError(f"channels must be 1 or 3, got {self.channels}")
        if not 0 <= self.val_fraction < 1:
            raise DataError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


NAMED = {
    **{k: f"2D toy ({(v.__doc__ or '').strip().splitlines()[0]})" for k, v in toy2d.TOY2D.items()},
    "digits": "scikit-learn 8x8 digits, 17 levels, 1437 train / 360 test, bundled (no download)",
    "mnist": "MNIST 28x28, 256 levels, 54k/6k/10k; IDX files from --data-dir or $DEEPGEN_DATA",
    "binarized-mnist": "static binarised MNIST (Larochelle), 50k/10k/10k; .amat(.gz) from --data-dir",
    **{f"signal:{k}": v for k, v in signals.SIGNALS.items()},
    **{f"scene:{k}": v for k, v in scenes.SCENES.items()},
    **{f"domains:{k}": v for k, v in domains.DOMAINS.items()},
}


def dataset_table() -> list[dict]:
    """Rows (name, description) for ``deepgen list``."""
    rows = [{"name": k, "description": v} for k, v in NAMED.items()]
    rows.append({"name": "PATH.npy | PATH.csv", "description": "your table (N, D) or images (N, [C,] H, W)"})
    rows.append({"name": "DIR/", "description": "a folder of PNG/JPEG images (--image-size, --channels)"})
    rows.append({"name": "IMAGE.png", "description": "one image as a signal: coordinates -> colours (siren)"})
    return rows


def _images_to_splits(parts: dict[str, tuple[np.ndarray, np.ndarray | None]], levels: int) -> dict[str, Split]:
    out = {}
    for k, (x, y) in parts.items():
        out[k] = Split.from_codes(x, levels, None if y is None else torch.from_numpy(np.asarray(y, np.int64)))
    return out


def _hold_out(x: np.ndarray, y: np.ndarray | None, frac: float, seed: int):
    tr, va = split_indices(len(x), frac, seed)
    pick = lambda a, i: None if a is None else a[i]  # noqa: E731
    return (x[tr], pick(y, tr)), (x[va], pick(y, va))


def _load_named(spec: DataSpec) -> tuple[DataInfo, dict[str, Split], str]:
    name = spec.name
    if name in toy2d.TOY2D:
        g = torch.Generator().manual_seed(spec.seed)
        splits = {
            "train": Split(toy2d.sample(name, spec.n_train, g)),
            "val": Split(toy2d.sample(name, 5_000, g)),
            "test": Split(toy2d.sample(name, 10_000, g)),
        }
        return DataInfo(name, (2,)), splits, f"toy2d:{name} seed {spec.seed}"
    if name == "digits":
        parts = images.digits_split()
        train, val = _hold_out(*parts["train"], spec.val_fraction, spec.seed)
        splits = _images_to_splits({"train": train, "val": val, "test": parts["test"]}, 17)
        return DataInfo("digits", (1, 8, 8), 17, 10), splits, "sklearn.datasets.load_digits"
    root = images.data_dir(spec.data_dir)
    if name == "mnist":
        parts = images.load_mnist(root)
        train, val = _hold_out(*parts["train"], spec.val_fraction, spec.seed)
        splits = _images_to_splits({"train": train, "val": val, "test": parts["test"]}, 256)
        return DataInfo("mnist", (1, 28, 28), 256, 10), splits, f"MNIST IDX files in {root}"
    if name == "binarized-mnist":
        parts = images.load_binarized_mnist(root)
        splits = _images_to_splits({k: (v, None) for k, v in parts.items()}, 2)
        return DataInfo("binarized-mnist", (1, 28, 28), 2), splits, f"binarised MNIST .amat in {root}"
    raise AssertionError(name)


def _binarize(info: DataInfo, splits: dict[str, Split], mode: str, source: str):
    """Binary codes for evaluation splits (and for train under ``threshold``); dynamic keeps grey train codes."""
    if info.levels is None:
        raise DataError(f"{source}: --binarize needs discrete data in [0, 1]; this data is continuous")
    out, transform = {}, None
    g = torch.Generator().manual_seed(1234)  # evaluation data are binarised once, reproducibly
    for k, s in splits.items():
        if mode == "threshold":  # x > 0.5 exactly, in integer arithmetic: k / (L-1) > 1/2  <=>  2k > L-1
            codes = (s.storage.to(torch.int32) * 2 > s.levels - 1).to(torch.uint8)
        elif k == "train":
            out[k] = s  # grey levels, binarised afresh for every batch by batch_transform
            continue
        else:
            codes = binarize_dynamic(s.x, g).to(torch.uint8)
        out[k] = Split(codes, s.y, levels=2)
    if mode == "dynamic":
        transform = binarize_dynamic
    name = f"{info.name}[{mode}-binarized]"
    return DataInfo(name, info.shape, 2, info.num_classes), out, transform


def _load_structured(spec: DataSpec) -> Dataset:
    """Signals, scenes and domain pairs (names ``signal:``, ``scene:``, ``domains:``)."""
    prefix, name = spec.name.split(":", 1)
    if prefix == "domains":
        digits = load_dataset(
            DataSpec("digits", binarize=spec.binarize, val_fraction=spec.val_fraction, seed=spec.seed)
        )
        if name == "digits-mnist":  # the second domain is MNIST, from --data-dir
            mnist = load_dataset(
                DataSpec("mnist", data_dir=spec.data_dir, val_fraction=spec.val_fraction, seed=spec.seed)
            )
            return domains.digits_and_mnist(digits, mnist).to_dataset()
        return domains.named_domains(name, digits, spec.seed).to_dataset()
    if spec.binarize != "none":
        raise DataError(f"{spec.name}: --binarize applies to discrete examples; a {prefix} has float targets")
    if prefix == "signal":
        return signals.named_signal(name, spec.image_size).to_dataset()
    return scenes.synthetic_scene(name, size=spec.image_size or 32).to_dataset()


#: Suffixes that make a name a path even without a folder in it (``data.csv``).
PATH_SUFFIXES = (".npy", ".csv", ".txt", ".png", ".jpg", ".jpeg")


def looks_like_path(name: str) -> bool:
    """True for names a user meant as a file or folder: a separator, ``~``/``.`` in front, or a data suffix."""
    return "/" in name or os.sep in name or name.startswith(("~", ".")) or Path(name).suffix.lower() in PATH_SUFFIXES


def user_path(name: str) -> Path:
    """The existing file or folder ``name`` names; a one-line error when it does not exist.

    A missing path is "file not found", not "unknown dataset" (which lists the named datasets and
    would send the user looking for a typo in a name they never meant).
    """
    path = Path(name).expanduser()
    if path.exists():
        return path
    if looks_like_path(name):
        where = "" if path.is_absolute() else f" (looked in {Path.cwd()})"
        raise DataError(f"{name}: file not found{where}")
    raise UnknownNameError("dataset", name, list(NAMED) + ["PATH.npy", "PATH.csv", "DIR/"])


def is_image_file(name: str) -> bool:
    """True when ``name`` is one existing image file (loaded as a signal, not as a table of examples)."""
    path = Path(name).expanduser()
    return path.is_file() and path.suffix.lower() in images.IMAGE_SUFFIXES


def resolve_user_path(spec: DataSpec) -> DataSpec:
    """``spec`` with a user file's name made absolute, so a run stored with it works from any folder.

    Named datasets are returned unchanged; a path that does not exist raises as :func:`user_path`.
    """
    if spec.name in NAMED:
        return spec
    path = user_path(spec.name).resolve()
    return spec if str(path) == spec.name else dataclasses.replace(spec, name=str(path))


def load_dataset(spec: DataSpec | str, info: DataInfo | None = None) -> Dataset:
    """Load ``spec`` into a :class:`Dataset` (train/val/test splits in model space).

    ``info``: a trained run's :class:`DataInfo`; user files are then standardised with the run's
    statistics and must have the run's example shape.
    """
    spec = DataSpec(spec) if isinstance(spec, str) else spec
    if ":" in spec.name and spec.name in NAMED:
        return _load_structured(spec)
    if spec.name in NAMED:
        info_new, splits, source = _load_named(spec)
    else:
        path = user_path(spec.name)
        if is_image_file(spec.name):  # one image file: a signal (coordinates -> colours), for SIREN
            return signals.image_file(path, spec.image_size).to_dataset()
        arr, levels = read_user_array(spec, info)
        if len(arr) < 2:
            raise DataError(f"{spec.name}: has {len(arr)} example(s); training needs at least 2")
        tr, va = train_val_rows(arr, spec.val_fraction, spec.seed)
        train, info_new = make_split(spec, arr, tr, levels, info)
        val, _ = make_split(spec, arr, va, levels, info_new)
        splits = {"train": train, "val": val, "test": val}
        source = str(path)
    transform = None
    if spec.binarize != "none":
        info_new, splits, transform = _binarize(info_new, splits, spec.binarize, spec.name)
    if spec.classes is not None:
        info_new, splits = keep_classes(info_new, splits, spec.classes, spec.name)
    for k, s in splits.items():
        if len(s) == 0 and k == "train":
            raise DataError(f"{spec.name}: the {k} split is empty")
    return Dataset(info_new, splits["train"], splits["val"], splits["test"], source, transform)


def keep_classes(info: DataInfo, splits: dict[str, Split], classes: tuple[int, ...], source: str):
    """Every split restricted to the examples labelled with one of ``classes``; the labels keep their
    values (a model of classes 0-8 still knows there are 10). The info's name records the selection."""
    if any(s.y is None or s.y.dtype.is_floating_point for s in splits.values()):
        raise DataError(f"{source}: --classes needs class labels; this data has none")
    out = {}
    for k, s in splits.items():
        keep = torch.isin(s.y, torch.tensor(classes, dtype=s.y.dtype))
        out[k] = s.with_storage(s.storage[keep], s.y[keep])
    missing = [c for c in classes if not bool((splits["train"].y == c).any())]
    if missing:
        raise DataError(f"{source}: no training examples of class(es) {', '.join(map(str, missing))}")
    return dataclasses.replace(info, name=f"{info.name}[classes {format_classes(classes)}]"), out


def format_classes(classes) -> str:
    """Sorted labels as ranges: (0, 1, 2, 3, 7) -> "0-3,7" (what ``--classes`` accepts)."""
    runs: list[list[int]] = []
    for c in sorted(set(classes)):
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def load_eval_split(spec: DataSpec | str, info: DataInfo | None = None) -> tuple[Split, DataInfo]:
    """Data to score: the test split of a named dataset, or every row of a user file, in order."""
    spec = DataSpec(spec) if isinstance(spec, str) else spec
    if spec.name in NAMED or is_image_file(spec.name):
        ds = load_dataset(spec, info)
        return ds.test, ds.info
    user_path(spec.name)
    arr, levels = read_user_array(spec, info)
    rows = slice(None) if isinstance(arr, np.memmap) else np.arange(len(arr))
    split, info_new = make_split(spec, arr, rows, levels, info)
    if spec.binarize != "none":
        info_new, parts, _ = _binarize(info_new, {"test": split}, spec.binarize, spec.name)
        split = parts["test"]
    if spec.classes is not None:
        raise DataError(f"{spec.name}: --classes selects labelled examples of a named dataset; a file has no labels")
    return split, info_new


def check_compatible(run_info: DataInfo, data_info: DataInfo) -> None:
    """Raise DataError when data cannot be scored by a model trained on ``run_info``."""
    if run_info.kind != data_info.kind:
        raise DataError(f"{data_info.name}: data are of kind {data_info.kind}, the run was trained on {run_info.kind}")
    if tuple(run_info.shape) != tuple(data_info.shape):
        raise DataError(
            f"{data_info.name}: examples have shape {data_info.shape}, the run was trained on {run_info.shape}"
        )
    if run_info.levels != data_info.levels:
        have = "continuous" if data_info.levels is None else f"{data_info.levels} levels"
        want = "continuous" if run_info.levels is None else f"{run_info.levels} levels"
        raise DataError(f"{data_info.name}: data have {have}, the run was trained on {want} ({run_info.name})")


def validate_tensor(x: torch.Tensor, info: DataInfo, source: str = "input") -> None:
    """Check a batch of rows passed from Python: shape (``info.row_shape``), finiteness and value range."""
    if not isinstance(x, torch.Tensor):
        raise DataError(f"{source}: expected a torch.Tensor, got {type(x).__name__}")
    if tuple(x.shape[1:]) != tuple(info.row_shape):
        what = {"signal": "coordinates", "scene": "rays"}.get(info.kind, "examples")
        raise DataError(f"{source}: expected {what} of shape {tuple(info.row_shape)}, got batch shape {tuple(x.shape)}")
    arr = x.detach().cpu().numpy()
    check_examples(arr, source)
    check_finite(arr, source)
    if info.levels is not None:
        k = arr.astype(np.float64) * (info.levels - 1)
        off = np.abs(k - np.rint(k)) > 1e-4
        bad = off | (arr < 0) | (arr > 1)
        if bad.any():  # name the value the caller passed, as a plain number (not its level, not NaN)
            idx = np.argwhere(bad)[0]
            v = float(arr[tuple(idx)])
            expect = (
                "0 or 1 (binary data)"
                if info.levels == 2
                else f"one of the {info.levels} levels k/{info.levels - 1} in [0, 1]"
            )
            raise DataError(f"{source}: value {v:g} at {_where(idx, arr.ndim)} is not {expect}")
