"""``deepgen train`` flags of the engine: --resume messages, --init-from, --device, --grad-accum,
--sample-every, and that nothing is printed before a refusal."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from deepgen.train.checkpoint import load_checkpoint

VAE = ["vae", "--data", "moons", "-o", "hidden=8,8", "-o", "latent_dim=2", "--threads", "1", "--no-progress"]


def deepgen(*args):
    cmd = [sys.executable, "-m", "deepgen", "train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def one_line_error(p, code=2):
    assert p.returncode == code, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("deepgen: error:"), p.stderr
    assert p.stdout == ""  # no banner before a refusal
    return lines[0]


def test_resume_init_from_and_refusals(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    p = deepgen(*VAE, "--steps", "4", "--out", str(a), "--sample-every", "2")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("training vae") and sorted(f.name for f in (a / "samples").iterdir()) == [
        "step_000002.png",
        "step_000004.png",
    ]
    assert "already holds a run" in one_line_error(deepgen(*VAE, "--steps", "4", "--out", str(a)))

    p = deepgen(*VAE, "--steps", "6", "--out", str(a), "--resume", "--threads", "2")  # threads may change
    assert p.returncode == 0, p.stderr
    assert "resumed from step 4" in p.stderr and load_checkpoint(a)["step"] == 6

    p = deepgen(*VAE, "--steps", "2", "--out", str(b), "--init-from", f"{a}:encoder")
    assert p.returncode == 0, p.stderr
    assert f"initial weights from {a}:encoder" in p.stdout
    assert json.loads((b / "config.json").read_text())["init_from"]["source_step"] == 6
    err = one_line_error(deepgen(*VAE, "--steps", "3", "--out", str(b), "--resume", "--init-from", f"{a}:encoder"))
    assert "--init-from starts a fresh run" in err
    err = one_line_error(deepgen(*VAE, "--steps", "2", "--out", str(tmp_path / "c"), "--init-from", f"{a}:nope"))
    assert "has no submodule 'nope'" in err


def test_options_that_do_not_apply_are_one_line_errors(tmp_path):
    gan = ["gan", "--data", "moons", "-o", "hidden=8,8", "--steps", "2", "--threads", "1"]
    assert "cannot be split into micro-batches" in one_line_error(
        deepgen(*gan, "--grad-accum", "2", "--out", str(tmp_path / "g"))
    )
    if not torch.cuda.is_available():
        err = one_line_error(deepgen(*VAE, "--steps", "2", "--device", "cuda:1", "--out", str(tmp_path / "d")))
        assert "CUDA is not available" in err


@pytest.mark.parametrize("flags", [["--grad-accum", "2", "--precision", "bf16"]])
def test_step_options_from_the_cli(tmp_path, flags):
    p = deepgen(*VAE, "--steps", "3", "--out", str(tmp_path), "-q", *flags)
    assert p.returncode == 0, p.stderr
    tc = load_checkpoint(tmp_path)["train_config"]
    assert tc["grad_accum"] == 2 and tc["precision"] == "bf16" and load_checkpoint(tmp_path)["batches_drawn"] == 6
