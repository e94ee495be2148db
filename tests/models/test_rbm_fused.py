"""The RBM's fused updates (``--steps-per-call``) against one update per call: the same weights,
chains and momentum buffers for every unit type, CD-k and PCD-k, weight decay and a learning-rate
schedule; logging, evaluation and checkpoints at the same steps; exact resume across fused calls;
and what the engine refuses or runs one step at a time."""

from __future__ import annotations

import json

import pytest
import torch

from deepgen.errors import ConfigError
from deepgen.models.energy.rbm import RBM, RBMConfig
from deepgen.models.energy.rbm_kernel import UNIT_CODES, cd_updates, kernel
from deepgen.train import TrainConfig, Trainer
from deepgen.train.run import build_model

CASES = [
    {"hidden": 12, "k": 1, "persistent": True, "chains": 16},  # PCD-1 with as many chains as the batch
    {"hidden": 12, "k": 2, "hidden_units": "spin"},  # CD-2 from the data
    {"hidden": 8, "k": 3, "visible": "spin", "hidden_units": "gaussian", "persistent": True, "chains": 24},
]


def _fit(data, options, out, steps_per_call, steps=45, resume=False, **train):
    torch.manual_seed(0)
    m = RBM(data.info, RBMConfig(momentum=0.5, **options))
    settings = {
        "steps": steps, "batch_size": 16, "lr": 0.05, "weight_decay": 1e-3, "lr_schedule": "cosine",
        "warmup_steps": 5, "seed": 0, "progress": False, "eval_every": 20, "log_every": 10, "ckpt_every": 0,
        "threads": 1, "eval_examples": 64, "steps_per_call": steps_per_call, **train,
    }  # fmt: skip
    t = Trainer(m, data, TrainConfig(**settings), out, plots=False, quiet=True, overwrite=not resume, resume=resume)
    t.fit()
    return m, t


def _state(m, t):
    opt = t.optimizers["main"]
    bufs = [opt.state[p]["momentum_buffer"] for p in (m.W, m.b, m.c)]
    return [m.W, m.b, m.c, m.chains, *bufs]


def _logged_steps(run) -> list[tuple[int, str]]:
    with open(run / "metrics.jsonl") as f:
        return [(r["step"], r["split"]) for r in map(json.loads, f)]


@pytest.mark.parametrize("options", CASES, ids=["pcd1", "cd2-spin-hidden", "pcd3-spin-gaussian"])
def test_fused_updates_equal_one_update_per_call(binary_digits, tmp_path, options):
    one, t1 = _fit(binary_digits, options, tmp_path / "one", 1)
    fused, t2 = _fit(binary_digits, options, tmp_path / "fused", 100)
    for a, b in zip(_state(one, t1), _state(fused, t2)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert _logged_steps(tmp_path / "one") == _logged_steps(tmp_path / "fused")
    assert t2.optimizers["main"].param_groups[0]["lr"] == t1.optimizers["main"].param_groups[0]["lr"]


def test_fused_updates_with_gaussian_visible_units(moons, tmp_path):
    options = {"hidden": 8, "k": 1, "persistent": True, "chains": 16}
    one, t1 = _fit(moons, options, tmp_path / "one", 1, steps=30)
    fused, t2 = _fit(moons, options, tmp_path / "fused", 7, steps=30)  # calls of 7, cut at every logged step
    assert fused.visible == "gaussian"
    for a, b in zip(_state(one, t1), _state(fused, t2)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_resume_across_fused_calls_is_exact(binary_digits, tmp_path):
    options, const = CASES[0], {"lr_schedule": "constant", "warmup_steps": 0, "ckpt_every": 20}
    straight, ts = _fit(binary_digits, options, tmp_path / "straight", 100, steps=45, **const)
    _fit(binary_digits, options, tmp_path / "split", 100, steps=20, **const)
    resumed, tr = _fit(binary_digits, options, tmp_path / "split", 100, steps=45, resume=True, **const)
    for a, b in zip(_state(straight, ts), _state(resumed, tr)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_compiled_kernel_equals_the_eager_function():
    torch.manual_seed(1)
    W, b, c = 0.3 * torch.randn(6, 4), torch.randn(6), torch.randn(4)
    xs = [(torch.rand(5, 6) < 0.5).float() for _ in range(3)]
    args = ([0.1, 0.05, 0.02], 0.9, 1e-2, 2, True, UNIT_CODES["bernoulli"], UNIT_CODES["bernoulli"])
    results = []
    for fn in (cd_updates, kernel()):
        params = [t.clone() for t in (W, b, c)]
        bufs = [torch.zeros_like(t) for t in params]
        torch.manual_seed(2)
        chains, loss, gap = fn(*params, xs, xs[0].clone(), args[0], args[1], bufs, *args[2:])
        results.append([*params, *bufs, chains, loss, gap])
    for a, b_ in zip(*results):
        torch.testing.assert_close(a, b_, rtol=0, atol=1e-6)
    assert not torch.equal(results[0][0], W)  # it trained


def test_what_cannot_fuse_runs_one_step_per_call(binary_digits, tmp_path, capsys):
    options = CASES[0]
    one, t1 = _fit(binary_digits, options, tmp_path / "one", 1, steps=20, grad_clip=1.0)
    torch.manual_seed(0)
    m = RBM(binary_digits.info, RBMConfig(momentum=0.5, **options))
    cfg = TrainConfig(
        steps=20, batch_size=16, lr=0.05, weight_decay=1e-3, lr_schedule="cosine", warmup_steps=5, seed=0,
        progress=False, eval_every=20, log_every=10, ckpt_every=0, threads=1, eval_examples=64,
        steps_per_call=100, grad_clip=1.0,
    )  # fmt: skip
    t2 = Trainer(m, binary_digits, cfg, tmp_path / "clip", plots=False, quiet=False)
    t2.fit()
    assert "one step per call (--grad-accum, --grad-clip" in capsys.readouterr().err
    for a, b in zip(_state(one, t1), _state(m, t2)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_steps_per_call_is_refused_or_falls_back_where_it_cannot_apply(binary_digits, moons, tmp_path, capsys):
    vae = build_model("vae", moons.info, seed=0)
    with pytest.raises(ConfigError, match="takes one step per call"):
        Trainer(vae, moons, TrainConfig(steps=2, steps_per_call=4, progress=False), tmp_path / "v", quiet=True).fit()
    rbm = RBM(binary_digits.info, RBMConfig(hidden=4))
    cfg = TrainConfig(steps=2, steps_per_call=4, ema_decay=0.9, progress=False, eval_every=0)
    Trainer(rbm, binary_digits, cfg, tmp_path / "r", plots=False).fit()  # one step per call, with a note
    assert "one step per call (an EMA" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="steps_per_call"):
        TrainConfig(steps_per_call=0)
