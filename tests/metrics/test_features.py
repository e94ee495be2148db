"""The shipped feature networks: they load weights-only, are accurate, and match their recorded hashes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

from deepgen.metrics import features as F


def test_shipped_files_match_their_reports():
    reports = F.shipped_reports()
    for name, fname in F.FILES.items():
        data = (F.WEIGHTS_DIR / fname).read_bytes()
        assert hashlib.sha256(data).hexdigest() == reports[name]["sha256"], name
    assert reports["deepgen-mnist"]["test_accuracy"] >= 0.99
    assert reports["deepgen-digits"]["test_accuracy"] >= 0.97


def test_digits_network_accuracy(digits):
    net = F.load_feature_network("deepgen-digits")
    assert F.accuracy(net, digits.test.x, digits.test.y) >= 0.97
    feats, logits = F.extract(net, digits.test.x[:10])
    assert feats.shape == (10, 128) and logits.shape == (10, 10)
    # features are scaled to unit RMS on the training data, which keeps KID's kernel well conditioned
    f, _ = F.extract(net, digits.train.x)
    assert 0.7 < f.pow(2).mean().sqrt().item() < 1.3


def test_mnist_network_loads():
    net = F.load_feature_network("deepgen-mnist")
    feats, logits = F.extract(net, torch.rand(3, 1, 28, 28))
    assert feats.shape == (3, 128) and logits.shape == (3, 10)
    assert F.network_for((1, 28, 28)) == "deepgen-mnist" and F.network_for((3, 32, 32)) is None


MNIST_DIR = os.environ.get("DEEPGEN_DATA", str(Path(__file__).parents[3] / "shared" / "data"))


@pytest.mark.skipif(
    not (Path(MNIST_DIR) / "mnist" / "t10k-images-idx3-ubyte.gz").exists(),
    reason="MNIST files not present (tests never need them)",
)
def test_mnist_network_accuracy_when_data_is_present():
    from deepgen.data import DataSpec, load_dataset

    ds = load_dataset(DataSpec("mnist", data_dir=MNIST_DIR))
    assert F.accuracy(F.load_feature_network("deepgen-mnist"), ds.test.x, ds.test.y) >= 0.99


def test_training_round_trip(tmp_path):
    net, report = F.train_feature_network("deepgen-digits", epochs=2, progress=False)
    assert 0.1 < report["test_accuracy"] <= 1.0
    path = tmp_path / "d.pt"
    F.save_feature_network(net, path, report)
    again = F.load_feature_network(str(path))
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(net.eval().features(x), again.features(x))
    (tmp_path / "bad.pt").write_bytes(b"junk")
    from deepgen.errors import CheckpointError

    with pytest.raises(CheckpointError):
        F.load_feature_network(str(tmp_path / "bad.pt"))
