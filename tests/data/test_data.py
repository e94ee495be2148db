"""Data loading, splits, transforms and validation of user files."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch

from deepgen.data import DataSpec, load_dataset, load_eval_split, toy2d, validate_tensor
from deepgen.data.images import read_amat, read_idx
from deepgen.data.transforms import dequantize, quantize
from deepgen.errors import DataError, UnknownNameError


@pytest.mark.parametrize("name", sorted(toy2d.TOY2D))
def test_toys_are_seeded_and_fresh(name):
    a = toy2d.sample(name, 500, torch.Generator().manual_seed(1))
    b = toy2d.sample(name, 500, torch.Generator().manual_seed(1))
    c = toy2d.sample(name, 500, torch.Generator().manual_seed(2))
    assert a.shape == (500, 2) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() < 10  # all toys live in a box of a few units


def test_toy_splits_are_disjoint_draws():
    ds = load_dataset(DataSpec("8gaussians", n_train=1000))
    assert (len(ds.train), len(ds.val), len(ds.test)) == (1000, 5000, 10000)
    assert not torch.equal(ds.val.x[:100], ds.test.x[:100])
    assert ds.info.levels is None and ds.info.shape == (2,)


def test_digits_fixed_split():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert (len(a.train) + len(a.val), len(a.test)) == (1437, 360)
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.train.y, b.train.y)
    assert a.info.levels == 17 and a.info.shape == (1, 8, 8) and a.info.num_classes == 10
    k = a.train.x * 16
    assert torch.equal(k, k.round()) and a.train.x.max() == 1.0


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(UnknownNameError, match="digits") as e:
        load_dataset("digitz")
    assert "Did you mean 'digits'" in str(e.value)


def _write_idx(path, arr, magic):
    header = struct.pack(">II", magic, arr.shape[0]) + (struct.pack(">II", *arr.shape[1:]) if magic == 2051 else b"")
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


def test_mnist_idx_reader_and_loader(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 50), ("t10k", 20)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), 2051)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n), 2049)
    ds = load_dataset(DataSpec("mnist", data_dir=str(tmp_path)))
    assert len(ds.train) + len(ds.val) == 50 and len(ds.test) == 20
    assert ds.info.levels == 256 and ds.info.shape == (1, 28, 28)
    raw = read_idx(tmp_path / "t10k-images-idx3-ubyte.gz")
    assert torch.allclose(ds.test.x[:, 0] * 255, torch.from_numpy(raw).float())
    dyn = load_dataset(DataSpec("mnist", data_dir=str(tmp_path), binarize="dynamic"))
    assert dyn.info.levels == 2 and set(dyn.test.x.unique().tolist()) <= {0.0, 1.0}
    assert dyn.batch_transform is not None


def test_mnist_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPGEN_DATA", raising=False)
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset("mnist")
    with pytest.raises(DataError, match="not found"):
        load_dataset(DataSpec("mnist", data_dir=str(tmp_path)))
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(bad, "wb") as fh:
        fh.write(struct.pack(">IIII", 2051, 10, 28, 28) + b"\0" * 100)
    with pytest.raises(DataError, match="truncated"):
        read_idx(bad)


def test_amat_reader(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 2, (5, 784))
    text = "\n".join(" ".join(map(str, r)) for r in arr) + "\n"
    p = tmp_path / "binarized_mnist_test.amat.gz"
    with gzip.open(p, "wt") as fh:
        fh.write(text)
    assert np.array_equal(read_amat(p), arr)
    p2 = tmp_path / "loose.amat"
    p2.write_text(text.replace(" ", "  "))  # irregular whitespace: slow path
    assert np.array_equal(read_amat(p2), arr)
    p3 = tmp_path / "bad.amat"
    p3.write_text(text.replace("1", "2", 1))
    with pytest.raises(DataError, match="0/1"):
        read_amat(p3)


def test_csv_and_npy_tables(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 3)) * [1, 10, 100] + [0, 5, -3]
    np.save(tmp_path / "t.npy", x)
    np.savetxt(tmp_path / "t.csv", x, delimiter=",", header="a,b,c", comments="")
    for f in ("t.npy", "t.csv"):
        ds = load_dataset(str(tmp_path / f))
        assert ds.info.shape == (3,) and ds.info.levels is None
        assert abs(ds.train.x.mean().item()) < 0.2 and abs(ds.train.x.std(0).mean().item() - 1) < 0.2
        assert ds.info.log_scale == pytest.approx(
            np.log(x[np.sort(np.random.default_rng(0).permutation(50)[5:])].std(0)).sum(), rel=0.5
        )
    split, info = load_eval_split(str(tmp_path / "t.csv"), ds.info)
    assert len(split) == 50  # scoring keeps every row, in file order


@pytest.mark.parametrize(
    "content, match",
    [
        ("1,2\n3,nan\n", "NaN at row 1, column 1"),
        ("1,2\ninf,3\n", "inf at row 1, column 0"),
        ("1,2\n3\n", "row 1 .* has 1 columns"),
        ("1,2\n3,x\n", "row 1 .*column 1: 'x' is not a number"),
        ("", "empty"),
        ("a,b\n", "no data rows"),
    ],
)
def test_csv_validation_errors_name_row_and_column(tmp_path, content, match):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(DataError, match=match) as e:
        load_dataset(str(p))
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_npy_validation_errors(tmp_path):
    np.save(tmp_path / "vec.npy", np.arange(10.0))
    with pytest.raises(DataError, match="expected \\(examples, features\\)"):
        load_dataset(str(tmp_path / "vec.npy"))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="numeric"):
        load_dataset(str(tmp_path / "obj.npy"))
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    with pytest.raises(DataError, match="0 example"):
        load_dataset(str(tmp_path / "empty.npy"))
    (tmp_path / "trunc.npy").write_bytes(open(tmp_path / "vec.npy", "rb").read()[:60])
    with pytest.raises(DataError):
        load_dataset(str(tmp_path / "trunc.npy"))
    np.save(tmp_path / "nb.npy", np.array([[0, 1], [1, 2]]))
    with pytest.raises(DataError, match="value 2 at row 1, column 1 is not 0 or 1"):
        load_dataset(DataSpec(str(tmp_path / "nb.npy"), levels=2))


def test_uint8_image_stack_and_folder(tmp_path):
    from PIL import Image

    imgs = np.random.default_rng(0).integers(0, 256, (6, 12, 12), dtype=np.uint8)
    np.save(tmp_path / "imgs.npy", imgs)
    ds = load_dataset(str(tmp_path / "imgs.npy"))
    assert ds.info.shape == (1, 12, 12) and ds.info.levels == 256
    folder = tmp_path / "folder"
    folder.mkdir()
    for i, a in enumerate(imgs):
        Image.fromarray(a).save(folder / f"{i}.png")
    Image.fromarray(np.stack([imgs[0]] * 3, -1)).resize((20, 20)).save(folder / "rgb.jpg")
    ds = load_dataset(DataSpec(str(folder), image_size=8))
    assert ds.info.shape == (3, 8, 8) and ds.info.levels == 256
    with pytest.raises(DataError, match="different sizes"):
        load_dataset(str(folder))
    (folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read image"):
        load_dataset(DataSpec(str(folder), image_size=8))
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(DataError, match="no image files"):
        load_dataset(str(empty))


def test_dequantize_quantize_round_trip():
    levels = 17
    k = torch.randint(0, levels, (100, 1, 8, 8)).float()
    x = k / (levels - 1)
    y, log_det = dequantize(x, levels, torch.Generator().manual_seed(0))
    assert ((y >= 0) & (y < 1)).all()
    assert torch.equal(quantize(y, levels), x)
    assert torch.allclose(log_det, torch.full((100,), -64 * math.log(levels)))


def test_validate_tensor():
    info = load_dataset("digits").info
    validate_tensor(torch.zeros(2, 1, 8, 8), info)
    with pytest.raises(DataError, match="shape"):
        validate_tensor(torch.zeros(2, 64), info)
    with pytest.raises(DataError, match="NaN"):
        validate_tensor(torch.full((2, 1, 8, 8), float("nan")), info)
    with pytest.raises(
        DataError, match=r"value 0.03125 at row 0, position \(0, 0, 0\) is not one of the 17 levels k/16"
    ):
        validate_tensor(torch.full((2, 1, 8, 8), 0.5 / 16), info)


def test_scoring_a_new_file_uses_the_runs_levels(tmp_path):
    """A 17-level run scoring another file of integers: values are checked and mapped to [0, 1]."""
    info = load_dataset("digits").info
    flat = np.random.default_rng(0).integers(0, 17, (5, 1, 8, 8))
    np.save(tmp_path / "more.npy", flat)
    split, got = load_eval_split(str(tmp_path / "more.npy"), info)
    assert got.levels == 17 and float(split.x.max()) <= 1.0
    assert torch.allclose(split.x * 16, torch.from_numpy(flat).float())
    ds = load_dataset(str(tmp_path / "more.npy"), info)  # the path deepgen eval takes
    assert float(ds.test.x.max()) <= 1.0
    np.save(tmp_path / "bad.npy", flat + 1)
    with pytest.raises(DataError, match="not an integer in 0..16"):
        load_eval_split(str(tmp_path / "bad.npy"), info)


def test_levels_do_not_apply_to_image_folders(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.full((4, 4), 255, np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(DataError, match="--levels does not apply to image folders"):
        load_dataset(DataSpec(str(tmp_path), levels=2))


def test_dynamic_binarisation_reference_is_binary():
    ds = load_dataset(DataSpec("digits", binarize="dynamic"))
    ref = ds.train_for_evaluation()
    assert set(ref.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(ref, ds.train_for_evaluation())  # reproducible
    assert not set(ds.train.x.unique().tolist()) <= {0.0, 1.0}  # training keeps grey values for fresh draws
