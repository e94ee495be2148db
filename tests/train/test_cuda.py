"""CUDA smoke tests: train, resume, sample, bf16, gradient accumulation and divergence on a GPU.

Skipped where no GPU is visible. The GPU paths differ from the CPU ones in what they synchronise:
indices and uint8 storage live on the device, metrics are summed there, and the loss check is lagged
by one step (see deepgen.train.monitor).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from deepgen.data import DataSpec, load_dataset
from deepgen.train import TrainConfig, Trainer, TrainingDiverged, build_model, load_run
from deepgen.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

OPTS = {"hidden": (32, 32), "latent_dim": 4, "arch": "mlp"}


def cfg(**kw):
    base = dict(steps=6, batch_size=32, device="cuda", progress=False, eval_every=3, ckpt_every=3, log_every=2)
    return TrainConfig(**{**base, **kw})


def test_train_resume_sample(tmp_path):
    ds = load_dataset(DataSpec("digits", binarize="dynamic"))  # uint8 storage, a transform on the device
    model = build_model("vae", ds.info, OPTS, seed=0)
    t = Trainer(model, ds, cfg(ema_decay=0.9), tmp_path / "a", plots=False, quiet=True)
    summary = t.fit()
    assert t.batches.storage.device.type == "cuda" and t.batches.storage.dtype == torch.uint8
    assert next(model.parameters()).device.type == "cuda" and summary["val_nll"] > 0

    Trainer(build_model("vae", ds.info, OPTS, seed=0), ds, cfg(steps=3, ema_decay=0.9), tmp_path / "b",
            plots=False, quiet=True).fit()  # fmt: skip
    Trainer(build_model("vae", ds.info, OPTS, seed=5), ds, cfg(ema_decay=0.9), tmp_path / "b",
            plots=False, quiet=True, resume=True).fit()  # fmt: skip
    ca, cb = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert ca["step"] == cb["step"] == 6 and "cuda" in ca["rng"][0]
    for k, v in ca["model"].items():  # same kernels, same order: cuBLAS is deterministic at fixed shapes
        assert torch.allclose(v, cb["model"][k], atol=1e-6), k

    run = load_run(tmp_path / "b", device="cuda")
    x = run.model.sample(8, generator=torch.Generator(device="cuda").manual_seed(0))
    assert x.device.type == "cuda" and x.shape == (8, *ds.info.shape) and torch.isfinite(x).all()


def test_bf16_and_grad_accum(tmp_path):
    ds = load_dataset(DataSpec("moons", n_train=512))
    model = build_model("vae", ds.info, {"hidden": (16, 16), "latent_dim": 2}, seed=0)
    t = Trainer(model, ds, cfg(precision="bf16", grad_accum=2), tmp_path, plots=False, quiet=True)
    summary = t.fit()
    assert t.batches_drawn == 12 and summary["loss"] == summary["loss"]  # finite (not NaN)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_divergence_caught_at_its_step(tmp_path):
    ds = load_dataset(DataSpec("moons", n_train=512))
    model = build_model("vae", ds.info, {"hidden": (16, 16), "latent_dim": 2}, seed=0)
    inner, calls = model.loss, []

    def loss(x, y=None):
        out = inner(x, y)
        calls.append(1)
        if len(calls) == 5:
            out["loss"] = out["loss"] * float("nan")
        return out

    model.loss = loss
    t = Trainer(model, ds, cfg(steps=20, ckpt_every=2, eval_every=0), tmp_path, plots=False, quiet=True)
    with pytest.raises(TrainingDiverged, match=r"at step 5; .*step 4\) is kept"):
        t.fit()
    assert load_checkpoint(tmp_path)["step"] == 4


def test_cli_device_cuda(tmp_path):
    cmd = [sys.executable, "-m", "deepgen", "train", "gmm", "--data", "moons", "--steps", "5", "--device", "cuda"]
    p = subprocess.run([*cmd, "--out", str(tmp_path), "-q"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert load_run(tmp_path, device="cuda").model.sample(4).device.type == "cuda"
