"""SIGKILL part-way through training, then --resume: the final parameters are bit-identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from deepgen.config import to_dict
from deepgen.errors import CheckpointError
from deepgen.train.checkpoint import load_checkpoint

# 3,000 cheap steps: long enough that the kill always lands mid-run (the run takes several seconds)
ARGS = (
    "train vae --data digits --binarize dynamic --steps 3000 --batch-size 32 --ckpt-every 20 "
    "--eval-every 50 --log-every 10 --seed 3 --threads 1 -o hidden=64,64 -o arch=mlp -o latent_dim=4 "
    "--no-progress"
).split()


def deepgen(*args, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "deepgen", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def step_of(path):
    try:
        return load_checkpoint(path)["step"]
    except CheckpointError:
        return -1


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path):
    a, b = tmp_path / "straight", tmp_path / "killed"
    p = deepgen(*ARGS, "--out", str(a))
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err

    p = deepgen(*ARGS, "--out", str(b))
    ckpt = b / "checkpoint.pt"
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        if ckpt.exists() and step_of(ckpt) >= 60:
            break
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.communicate()
    assert p.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = step_of(ckpt)
    assert 60 <= killed_at < 3000

    p = deepgen(*ARGS, "--out", str(b), "--resume")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert not [f for f in os.listdir(b) if f.startswith(".checkpoint")]  # stale temporaries cleaned up
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca["step"] == cb["step"] == 3000
    for k, v in ca["model"].items():
        assert torch.equal(v, cb["model"][k]), k
    sa, sb = ca["optimizers"]["main"]["state"], cb["optimizers"]["main"]["state"]
    for i in sa:
        for k in sa[i]:
            assert torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k]))
    assert torch.equal(ca["rng"][0]["cpu"], cb["rng"][0]["cpu"])
    steps = [
        int(line.split('"step": ')[1].split(",")[0])
        for line in (b / "metrics.jsonl").read_text().splitlines()
        if '"split": "train"' in line
    ]
    assert steps == sorted(set(steps)) and steps[-1] == 3000


def test_resume_refuses_changed_settings(tmp_path):
    base = ["train", "gmm", "--data", "moons", "--steps", "3", "--out", str(tmp_path), "-q"]
    assert deepgen(*base).wait(timeout=120) == 0
    p = deepgen(*base[:-1], "--resume", "--lr", "0.5", "--steps", "6")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and "lr (run: 0.01, now: 0.5)" in err and "Traceback" not in err
    p = deepgen(*base[:-1], "--resume", "--steps", "6")  # more steps is fine
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert load_checkpoint(tmp_path)["step"] == 6


SMALL = {"vae": {"latent_dim": 2, "hidden": (16, 16)}, "gan": {"latent_dim": 2, "hidden": (16, 16), "d_steps": 2}}


@pytest.mark.parametrize(
    "name, settings",
    [
        ("vae", {"lr_schedule": "cosine", "warmup_steps": 5, "ema_decay": 0.9, "grad_clip": 1.0}),
        ("gan", {"warmup_steps": 3, "ema_decay": 0.8}),
    ],
)
def test_interrupted_and_resumed_in_process_is_exact(name, settings, tmp_path):
    """Schedules, EMA, clipping and several optimisers with extra batches all survive a resume."""
    from deepgen.data import DataSpec, load_dataset
    from deepgen.train import TrainConfig, Trainer, build_model

    ds = load_dataset(DataSpec("moons", n_train=400))
    cfg = TrainConfig(steps=12, batch_size=16, seed=1, progress=False, eval_every=4, ckpt_every=0, **settings)
    Trainer(build_model(name, ds.info, SMALL[name], seed=0), ds, cfg, tmp_path / "a", plots=False, quiet=True).fit()

    model = build_model(name, ds.info, SMALL[name], seed=0)
    trainer = Trainer(model, ds, cfg, tmp_path / "b", plots=False, quiet=True)
    inner = model.train_step

    def stop_after_five(x, y, ctx):  # as if Ctrl-C arrived during step 5
        out = inner(x, y, ctx)
        if ctx.global_step == 4:
            trainer._stop_requested = True
        return out

    model.train_step = stop_after_five
    assert trainer.fit()["interrupted"] and load_checkpoint(tmp_path / "b")["step"] == 5
    fresh = build_model(name, ds.info, SMALL[name], seed=99)  # different init: all state must come from disk
    Trainer(fresh, ds, cfg, tmp_path / "b", plots=False, quiet=True, resume=True).fit()
    ca, cb = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert ca["step"] == cb["step"] == 12 and ca["batches_drawn"] == cb["batches_drawn"]
    for k, v in ca["model"].items():
        assert torch.equal(v, cb["model"][k]), k
    for a, b in zip(ca["ema"]["shadow"], cb["ema"]["shadow"]):
        assert torch.equal(a, b)
    for opt in ca["optimizers"]:
        assert ca["optimizers"][opt]["param_groups"][0]["lr"] == cb["optimizers"][opt]["param_groups"][0]["lr"]


def test_fresh_run_refuses_to_overwrite(tmp_path):
    base = ["train", "gmm", "--data", "moons", "--steps", "2", "--out", str(tmp_path), "-q"]
    assert deepgen(*base).wait(timeout=120) == 0
    p = deepgen(*base)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and "already holds a run" in err
    assert deepgen(*base, "--overwrite").wait(timeout=120) == 0
    p = deepgen(*base[:3], "circles", *base[4:], "--resume")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and "resume with the run's data" in err


def test_a_run_written_before_a_model_option_existed_still_resumes(tmp_path):
    """A checkpoint's model_config lacks an option added later (here the VAE's ``act``): resuming matches
    it at the option's default, and refuses it at any other value or with an option the model lacks."""
    from deepgen.models.vae.vae import VAEConfig
    from deepgen.train.checkpoint import save_atomic
    from deepgen.train.state import same_model_options

    old = {k: v for k, v in to_dict(VAEConfig()).items() if k != "act"}
    assert same_model_options(VAEConfig(), old)
    assert not same_model_options(VAEConfig(act="tanh"), old)
    assert not same_model_options(VAEConfig(), {**old, "gone": 1})
    assert not same_model_options(VAEConfig(latent_dim=3), old)

    base = ["train", "vae", "--data", "digits", "--steps", "3", "--out", str(tmp_path), "-q", "--threads", "1"]
    assert deepgen(*base, "-o", "arch=mlp").wait(timeout=120) == 0
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    del ckpt["model_config"]["act"]  # as written before the option existed
    save_atomic(ckpt, tmp_path / "checkpoint.pt")
    p = deepgen(*base, "-o", "arch=mlp", "--resume", "--steps", "5")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert load_checkpoint(tmp_path)["step"] == 5
    p = deepgen(*base, "-o", "arch=mlp", "-o", "act=tanh", "--resume", "--steps", "7")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and "model options differ" in err
