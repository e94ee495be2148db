"""Two CPU processes under torchrun (gloo): clean exit codes and identical parameters on every rank."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
HERE = Path(__file__).parent


def run(args, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(TORCHRUN + args, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
# DDP wrapper path, the custom train_step path, and a model whose buffers (an EMA codebook) follow its batches
@pytest.mark.parametrize("model", ["vae", "gan", "vqvae"])
def test_ranks_agree(model, tmp_path):
    p = run([str(HERE / "ddp_worker.py"), model, str(tmp_path)])
    assert p.returncode == 0, p.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    init = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert init["step"] == 8 and len(init["rng"]) == 2 and not torch.equal(init["rng"][0]["cpu"], init["rng"][1]["cpu"])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gmm", "gmm-two-optimizers"])
def test_two_processes_match_one_process_with_the_same_global_batch(model, tmp_path):
    """Gradient averaging is right (not just consistent): 2 ranks x 16 examples == 1 process x 32."""
    p = run([str(HERE / "ddp_worker.py"), model, str(tmp_path / "two"), "16"])
    assert p.returncode == 0, p.stderr[-3000:]
    one = subprocess.run(
        [sys.executable, str(HERE / "ddp_worker.py"), model, str(tmp_path / "one"), "32"],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert one.returncode == 0, one.stderr[-3000:]
    two = torch.load(tmp_path / "two" / "rank0.pt", weights_only=True)
    ref = torch.load(tmp_path / "one" / "rank0.pt", weights_only=True)
    other_rank = torch.load(tmp_path / "two" / "rank1.pt", weights_only=True)
    init = torch.load(tmp_path / "one" / "init.pt", weights_only=True)
    for k in ref:
        assert torch.allclose(two[k], ref[k], atol=1e-5), k
        assert torch.equal(two[k], other_rank[k]), k
    assert max((ref[k] - init[k]).abs().max().item() for k in ref) > 1e-3  # training moved the parameters


@pytest.mark.slow
def test_cli_under_torchrun(tmp_path):
    out = tmp_path / "ddp"
    p = run(
        [
            "-m",
            "deepgen",
            "train",
            "gmm",
            "--data",
            "moons",
            "--steps",
            "10",
            "--out",
            str(out),
            "--no-progress",
            "-o",
            "components=3",
        ]
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "run:" in p.stdout and p.stdout.count("run:") == 1  # rank 0 alone reports
    assert (out / "checkpoint.pt").exists() and (out / "samples.png").exists()
    cfg = (out / "config.json").read_text()
    assert '"world_size": 2' in cfg
    shutil.rmtree(out)


@pytest.mark.slow
def test_parameter_unused_on_one_rank(tmp_path):
    """The manual all-reduce sends zeros for a missing gradient: no hang, nothing added to the wrong tensor."""
    p = run([str(HERE / "ddp_worker.py"), "unused", str(tmp_path)], timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    # only rank 1's loss has extra**2: the averaged gradient is (2 e + 0) / 2 = e, so SGD gives e (1 - lr)^8
    assert r0["extra"].item() == pytest.approx(0.95**8, rel=1e-5)


@pytest.mark.slow
def test_early_stopping_stops_every_rank_at_the_same_step(tmp_path):
    """Only rank 0 evaluates; its decision to stop reaches the others (no rank trains on alone)."""
    p = run([str(HERE / "ddp_worker.py"), "patience", str(tmp_path)], timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    for r in (0, 1):
        assert torch.load(tmp_path / f"rank{r}.pt", weights_only=True) == {"step": 4, "stopped_early": True}
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=True)["step"] == 2


@pytest.mark.slow
def test_a_time_limit_stops_every_rank_at_the_same_step_with_the_same_weights(tmp_path):
    """Ranks' clocks differ (10 and 11 s per step, limit 105 s): they agree on the latest clock every
    10 steps, so they stop together at step 10, when rank 1's clock (110 s) has crossed and rank 0's
    (100 s) has not; and the cosine read the same time on each, so their weights are equal."""
    p = run([str(HERE / "ddp_worker.py"), "time-limit", str(tmp_path)], timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert (r0["step"], r0["reached"]) == (r1["step"], r1["reached"]) == (10, True)
    assert all(torch.equal(r0["state"][k], r1["state"][k]) for k in r0["state"])


@pytest.mark.slow
def test_an_error_on_one_rank_ends_the_job(tmp_path):
    """Rank 0 fails mid-run while rank 1 waits in a gradient all-reduce: rank 0 must leave without
    waiting for rank 1 at the exit barrier (it would wait for ever), so torchrun stops the job."""
    p = run([str(HERE / "ddp_worker.py"), "fails", str(tmp_path)], timeout=120)
    assert p.returncode != 0 and "evaluation failed on rank 0" in p.stderr


@pytest.mark.slow
def test_per_rank_buffers_survive_start_and_resume(tmp_path):
    """A fresh start keeps each rank's own buffer, and 8 straight steps equal 4 + resume + 4 on every rank."""
    for folder, steps in (("straight", 8), ("resumed", 4), ("resumed", 8)):
        p = run([str(HERE / "ddp_worker.py"), "per-rank", str(tmp_path / folder), str(steps)], timeout=120)
        assert p.returncode == 0, p.stderr[-3000:]
    chain = {
        (folder, r, s): torch.load(tmp_path / folder / f"chain{r}-{s}.pt", weights_only=True)
        for folder, s in (("straight", 8), ("resumed", 4), ("resumed", 8))
        for r in (0, 1)
    }
    assert not torch.equal(chain["straight", 0, 8], chain["straight", 1, 8])  # rank 0 did not overwrite rank 1
    for r in (0, 1):
        assert torch.equal(chain["straight", r, 8], chain["resumed", r, 8]), f"rank {r} resumed differently"
    ckpt = torch.load(tmp_path / "resumed" / "run" / "checkpoint.pt", weights_only=True)
    assert [set(b) for b in ckpt["per_rank_buffers"]] == [{"chain"}, {"chain"}]
    assert torch.equal(ckpt["per_rank_buffers"][1]["chain"], chain["resumed", 1, 8])
    assert torch.equal(ckpt["model"]["chain"], chain["resumed", 0, 8])  # load_run sees rank 0's
