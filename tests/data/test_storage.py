"""Compact storage (uint8 codes, memory-mapped files), DataInfo kinds, and integer-file inference."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from deepgen.data import DataInfo, DataSpec, Split, load_dataset, load_eval_split
from deepgen.data import files as data_files
from deepgen.errors import DataError


def test_discrete_splits_store_uint8_codes_and_decode_to_model_space():
    ds = load_dataset("digits")
    s = ds.train
    assert s.storage.dtype == torch.uint8 and s.levels == 17 and int(s.storage.max()) == 16
    assert s.x.dtype == torch.float32 and torch.equal(s.x, s.storage.float() / 16)
    idx = torch.tensor([5, 0, 5])
    x, y = s.take(idx)
    assert torch.equal(x, s.x[idx]) and torch.equal(y, s.y[idx])
    assert torch.equal(s.decode(s.storage[idx]), x)
    sub = s.subset(10)
    assert len(sub) == 10 and sub.levels == 17 and torch.equal(sub.x, s.x[:10])
    xd, _ = s.draw(7, torch.Generator().manual_seed(0))
    assert xd.shape == (7, 1, 8, 8)
    with pytest.raises(TypeError, match="integer codes"):
        Split(torch.zeros(3, 2), levels=2)
    assert torch.equal(Split(x=torch.ones(2, 3)).x, torch.ones(2, 3))  # the old float constructor still works


def test_binarisation_keeps_codes():
    dyn = load_dataset(DataSpec("digits", binarize="dynamic"))
    assert dyn.train.levels == 17 and dyn.train.storage.dtype == torch.uint8  # grey, binarised per batch
    assert dyn.val.levels == 2 and set(dyn.val.storage.unique().tolist()) <= {0, 1}
    batch = dyn.batch_transform(dyn.train.decode(dyn.train.storage[:64]))
    assert set(batch.unique().tolist()) <= {0.0, 1.0}
    thr = load_dataset(DataSpec("digits", binarize="threshold"))
    grey = load_dataset("digits")
    assert torch.equal(thr.train.x, (grey.train.x > 0.5).float()) and thr.train.levels == 2


def test_mnist_sized_load_holds_no_float32_copy(tmp_path):
    """Loading 20k 28x28 images: peak memory below one float32 copy (63 MB; before uint8 storage: 98 MB, now ~35)."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20_000), ("t10k", 1000)):
        imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(
            np.array([2051, n, 28, 28], ">u4").tobytes() + imgs.tobytes()
        )
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(np.array([2049, n], ">u4").tobytes() + labels.tobytes())
    code = textwrap.dedent(f"""
        import resource
        from deepgen.data import DataSpec, load_dataset
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        ds = load_dataset(DataSpec("mnist", data_dir={str(tmp_path)!r}))
        assert str(ds.train.storage.dtype) == "torch.uint8", ds.train.storage.dtype
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak_mb = float(out.stdout.strip())
    assert peak_mb < 50, f"loading 20k images raised peak memory by {peak_mb:.0f} MB"  # float32 alone: 63 MB


def test_large_npy_is_memory_mapped(tmp_path, monkeypatch):
    monkeypatch.setattr(data_files, "MMAP_BYTES", 0)
    imgs = np.random.default_rng(0).integers(0, 256, (40, 1, 6, 6), dtype=np.uint8)
    np.save(tmp_path / "big.npy", imgs)
    ds = load_dataset(str(tmp_path / "big.npy"))
    assert ds.info.levels == 256 and len(ds.train) == 36 and len(ds.val) == 4
    assert torch.equal(ds.train.storage, torch.from_numpy(imgs[:36]))  # contiguous rows of the file
    assert ds.train.mapped and not load_dataset("digits").train.mapped
    assert torch.equal(ds.val.x * 255, torch.from_numpy(imgs[36:]).float())
    table = np.random.default_rng(1).normal(3.0, 2.0, (50, 3))
    np.save(tmp_path / "table.npy", table)
    mapped = load_dataset(str(tmp_path / "table.npy"))
    assert mapped.train.storage.dtype == torch.float64 and mapped.train.mapped  # raw values stay on disk ...
    x = mapped.train.x  # ... and are standardised when decoded
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std(0, unbiased=False).mean()) - 1) < 1e-5
    split, _ = load_eval_split(str(tmp_path / "table.npy"), mapped.info)
    assert len(split) == 50


def test_info_kinds_round_trip_and_old_checkpoints_load():
    old = {"name": "digits", "shape": [1, 8, 8], "levels": 17, "num_classes": 10, "shift": None, "scale": None}
    info = DataInfo.from_dict(old)
    assert info.kind == "examples" and info.is_image and info.to_dict() == old  # resumed runs compare equal
    scene = DataInfo("s", (3, 4, 4), kind="scene", grid=(4, 4), camera=(1.0, 1.0, 2.0, 2.0), bounds=(2.0, 6.0))
    assert DataInfo.from_dict(scene.to_dict()) == scene and not scene.is_image
    assert scene.row_shape == (6,) and scene.target_shape == (3,)
    pair = DataInfo("p", (1, 8, 8), 17, kind="domains", domain_b=DataInfo("b", (1, 4, 4), 2))
    assert DataInfo.from_dict(pair.to_dict()) == pair
    with pytest.raises(DataError, match="unknown data kind"):
        DataInfo("x", (2,), kind="graph")


@pytest.mark.parametrize(
    "values, levels, needle",
    [
        (np.array([[0, 1], [1, 1], [0, 0], [1, 0]]), 2, "binary (2 levels)"),
        (np.array([[0.0, 5.0], [3.0, 2.0], [1.0, 4.0]]), 6, "6 levels (0..5)"),
        (np.array([[-1, 2], [3, 4], [0, 0]]), None, "negative values"),
        (np.array([[0, 300], [3, 4], [0, 0]]), None, "above 255"),
    ],
)
def test_integer_files_say_what_was_assumed(tmp_path, capsys, values, levels, needle):
    for f in ("v.npy", "v.csv"):
        if f.endswith(".npy"):
            np.save(tmp_path / f, values)
        else:
            np.savetxt(tmp_path / f, values, delimiter=",", fmt="%g")
        ds = load_dataset(str(tmp_path / f))
        err = capsys.readouterr().err
        assert ds.info.levels == levels and err.count("\n") == 1 and needle in err and "--levels" in err
        if levels is not None:
            assert "--continuous" in err and ds.train.storage.dtype == torch.uint8
            assert float(ds.train.x.max()) <= 1.0
    forced = load_dataset(DataSpec(str(tmp_path / "v.npy"), continuous=True))
    assert forced.info.levels is None and capsys.readouterr().err == ""


def test_real_valued_files_and_explicit_levels_are_silent(tmp_path, capsys):
    np.save(tmp_path / "r.npy", np.random.default_rng(0).normal(size=(20, 2)))
    assert load_dataset(str(tmp_path / "r.npy")).info.levels is None
    np.save(tmp_path / "b.npy", np.array([[0, 1], [1, 0], [1, 1]]))
    assert load_dataset(DataSpec(str(tmp_path / "b.npy"), levels=4)).info.levels == 4
    assert capsys.readouterr().err == ""
    with pytest.raises(DataError, match="contradict"):
        DataSpec("x.npy", levels=2, continuous=True)


def test_chunked_standardisation_keeps_its_digits_when_the_mean_is_large():
    """Memory-mapped files are standardised chunk by chunk: the one-pass E[x^2] - E[x]^2 would lose
    every digit of the spread for data like 1e8 + N(0, 1)."""
    import numpy as np

    from deepgen.data.files import standardisation
    from deepgen.data.user_files import _chunked_standardisation

    x = 1e8 + np.random.default_rng(0).normal(size=(300_000, 2))
    mean, std = _chunked_standardisation(x)
    ref_mean, ref_std = standardisation(x)
    assert np.allclose(std, ref_std, rtol=1e-6) and np.allclose(mean, ref_mean, rtol=1e-12)
