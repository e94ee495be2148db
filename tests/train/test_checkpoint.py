"""Checkpoints: atomic writes, weights-only loads, clear errors for bad files."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from deepgen.errors import CheckpointError
from deepgen.train import TrainConfig, Trainer, build_model, load_run
from deepgen.train.checkpoint import load_checkpoint, save_atomic


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from deepgen.data import DataSpec, load_dataset

    ds = load_dataset(DataSpec("moons", n_train=500))
    out = tmp_path_factory.mktemp("run")
    model = build_model("gmm", ds.info, {"components": 2}, seed=0)
    Trainer(model, ds, TrainConfig(steps=5, batch_size=32, progress=False), out, plots=False, quiet=True).fit()
    return out


def test_atomic_save_leaves_no_temp_files(tmp_path):
    save_atomic({"a": torch.ones(3)}, tmp_path / "x.pt")
    save_atomic({"a": torch.zeros(3)}, tmp_path / "x.pt")
    assert os.listdir(tmp_path) == ["x.pt"]
    assert torch.equal(torch.load(tmp_path / "x.pt", weights_only=True)["a"], torch.zeros(3))


def test_checkpoint_holds_everything(run_dir):
    ckpt = load_checkpoint(run_dir)
    for key in (
        "model",
        "optimizers",
        "rng",
        "step",
        "train_config",
        "model_config",
        "data_info",
        "data_spec",
    ):
        assert key in ckpt
    assert ckpt["step"] == 5 and ckpt["model_name"] == "gmm" and len(ckpt["rng"]) == 1


def test_truncated_checkpoint(run_dir, tmp_path):
    data = (run_dir / "checkpoint.pt").read_bytes()
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_run(bad)


def test_empty_and_missing(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_run(tmp_path)
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_run(tmp_path)


def test_random_bytes(tmp_path):
    (tmp_path / "c.pt").write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError):
        load_run(tmp_path / "c.pt")


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/deepgen-pwned",))


def test_pickled_code_is_never_executed(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "deepgen.checkpoint", "payload": Evil()}, path)
    if os.path.exists("/tmp/deepgen-pwned"):
        os.remove("/tmp/deepgen-pwned")
    with pytest.raises(CheckpointError, match="refused"):
        load_run(path)
    assert not os.path.exists("/tmp/deepgen-pwned")
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(CheckpointError):
        load_run(raw)


def test_foreign_torch_file(tmp_path):
    torch.save({"state_dict": {"w": torch.ones(2)}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a deepgen checkpoint"):
        load_run(tmp_path / "foreign.pt")


def test_mismatched_state(run_dir, tmp_path):
    ckpt = load_checkpoint(run_dir)
    ckpt["model_config"] = {"components": 7}
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="does not match"):
        load_run(tmp_path)


def test_load_run_resolves_devices(run_dir):
    from deepgen.errors import ConfigError
    from deepgen.train.distributed import pick_device

    run = load_run(run_dir, device="auto")
    assert run.device == pick_device("auto") == next(run.model.parameters()).device
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            load_run(run_dir, device="cuda")
