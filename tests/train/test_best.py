"""``keep_best`` (best.pt, the checkpoint of the lowest validation NLL) and ``patience`` (early stopping).

The validation numbers are scripted (the model's ``evaluate`` replaced by a list of NLLs), so the
step each test expects for the best checkpoint and for the stop is known in advance.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch

from deepgen.data import DataSpec, load_dataset
from deepgen.errors import ConfigError
from deepgen.train import TrainConfig, Trainer, build_model, load_run
from deepgen.train.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def moons():
    return load_dataset(DataSpec("moons", n_train=256))


def cfg(**kw):
    base = dict(steps=12, batch_size=32, eval_every=2, eval_examples=64, log_every=2, ckpt_every=0, progress=False)
    return TrainConfig(**{**base, **kw})


def train(data, out, nlls, *, resume=False, **kw):
    """Train a small VAE whose validation NLLs are ``nlls``, in order."""
    model = build_model("vae", data.info, seed=0)
    values = iter(nlls)
    model.evaluate = lambda x, y=None: {"nll": next(values)}
    trainer = Trainer(model, data, cfg(**kw), out, plots=False, quiet=True, resume=resume, overwrite=not resume)
    return trainer, trainer.fit()


def weights(path):
    return load_checkpoint(path)["model"]


def test_keep_best_writes_the_checkpoint_of_the_lowest_validation_nll(moons, tmp_path):
    _, s = train(moons, tmp_path / "a", [5.0, 3.0, 4.0, 2.0, 6.0, 7.0], keep_best=True)
    assert s["steps"] == 12 and not s["stopped_early"]
    assert (s["best_step"], s["best_val_nll"]) == (8, 2.0)
    assert load_run(tmp_path / "a" / "best.pt").step == 8
    # the same run stopped at step 8 ends with the weights best.pt holds
    train(moons, tmp_path / "b", [5.0, 3.0, 4.0, 2.0], steps=8)
    best, at8 = weights(tmp_path / "a" / "best.pt"), weights(tmp_path / "b" / "checkpoint.pt")
    assert all(torch.equal(best[k], at8[k]) for k in at8)
    last = weights(tmp_path / "a" / "checkpoint.pt")
    assert not all(torch.equal(best[k], last[k]) for k in last)


def test_patience_stops_after_that_many_evaluations_without_improvement(moons, tmp_path):
    # evaluations at steps 2, 4, 6, 8: the best is step 4's, and steps 6 and 8 do not improve on it
    _, s = train(moons, tmp_path / "r", [5.0, 3.0, 4.0, 3.0, 1.0], patience=2, steps=100)
    assert s["stopped_early"] and not s["interrupted"]
    assert s["steps"] == 8 and (s["best_step"], s["best_val_nll"]) == (4, 3.0)
    assert load_checkpoint(tmp_path / "r" / "checkpoint.pt")["step"] == 8  # the stop writes a checkpoint
    assert load_checkpoint(tmp_path / "r" / "best.pt")["step"] == 4


def test_a_resumed_run_keeps_its_best_so_far(moons, tmp_path):
    out = tmp_path / "r"
    train(moons, out, [5.0, 3.0, 4.0], keep_best=True, steps=6)
    # 3.5 at step 8 is not better than step 4's 3.0 (a fresh count would have taken it); 2.5 at 10 is
    _, s = train(moons, out, [3.5, 2.5], keep_best=True, steps=10, resume=True)
    assert (s["best_step"], s["best_val_nll"]) == (10, 2.5)
    _, s = train(moons, out, [2.9], keep_best=True, steps=12, resume=True)
    assert (s["best_step"], s["best_val_nll"]) == (10, 2.5)
    assert load_checkpoint(out / "best.pt")["step"] == 10


def test_a_best_written_after_the_checkpoint_is_removed_on_resume(moons, tmp_path, capsys):
    out = tmp_path / "r"
    train(moons, out, [5.0, 3.0], keep_best=True, steps=4)
    shutil.copy(out / "checkpoint.pt", tmp_path / "step4.pt")
    train(moons, out, [2.0], keep_best=True, steps=6, resume=True)  # best.pt now holds step 6
    shutil.copy(tmp_path / "step4.pt", out / "checkpoint.pt")  # as if the run died before saving step 6
    model = build_model("vae", moons.info, seed=0)
    model.evaluate = lambda x, y=None: {"nll": 4.0}
    trainer = Trainer(model, moons, cfg(keep_best=True, steps=6), out, plots=False, resume=True)
    s = trainer.fit()
    assert "not the checkpoint's best; removed" in capsys.readouterr().err
    assert (s["best_step"], s["best_val_nll"]) == (6, 4.0)  # the count restarted with the file gone


def test_a_fresh_run_removes_an_earlier_runs_best(moons, tmp_path):
    out = tmp_path / "r"
    train(moons, out, [5.0, 3.0], keep_best=True, steps=4)
    assert (out / "best.pt").exists()
    train(moons, out, [5.0, 3.0], steps=4)  # --overwrite, without keep_best
    assert not (out / "best.pt").exists()


def test_settings_that_cannot_work_are_refused(moons, tmp_path):
    with pytest.raises(ConfigError, match="patience must be >= 0"):
        TrainConfig(patience=-1)
    with pytest.raises(ConfigError, match="needs eval_every > 0"):
        TrainConfig(keep_best=True, eval_every=0)
    model = build_model("vae", moons.info, seed=0)
    model.evaluate = lambda x, y=None: {"mse": 1.0}
    trainer = Trainer(model, moons, cfg(patience=3), tmp_path / "r", plots=False, quiet=True)
    with pytest.raises(ConfigError, match="watch the validation NLL, but vae reports mse"):
        trainer.fit()


def test_cli_patience_prints_the_best_and_eval_reads_best_pt(tmp_path):
    out = tmp_path / "made"
    args = "--data digits --steps 400 --eval-every 20 --patience 1 --threads 1 --no-progress -o hidden=32"
    p = subprocess.run(
        [sys.executable, "-m", "deepgen", "train", "made", *args.split(), "--lr", "0.05", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert "best validation NLL" in p.stdout and f"{out}/best.pt" in p.stdout
    ckpt, best = load_checkpoint(out / "checkpoint.pt"), load_checkpoint(out / "best.pt")
    assert best["step"] < ckpt["step"] < 400 and ckpt["best"]["step"] == best["step"]  # lr 0.05 overfits early
    assert "stopped early" in p.stdout and "has not improved for 1 evaluation (" in p.stderr
    p = subprocess.run(
        [sys.executable, "-m", "deepgen", "eval", str(out / "best.pt"), "--n-samples", "50", "-q"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert f"{out}/eval.json" in p.stdout


def test_a_resumed_run_that_stopped_early_takes_no_step(moons, tmp_path):
    out = tmp_path / "r"
    train(moons, out, [5.0, 3.0, 4.0, 3.0], patience=2, steps=100)  # stops at step 8
    # an evaluation would draw from the empty list and fail: the resumed run must not train on
    _, s = train(moons, out, [], patience=2, steps=100, resume=True)
    assert (s["steps"], s["start_step"], s["stopped_early"]) == (8, 8, True)
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 8


def test_an_interrupt_does_not_change_when_patience_stops_the_run(moons, tmp_path, monkeypatch):
    """The evaluation a Ctrl-C makes between evaluation steps is logged but neither counted towards
    the patience nor written as best.pt, so the resumed run stops where an uninterrupted one does."""
    from deepgen.train import engine as E

    _, s = train(moons, tmp_path / "a", [5.0, 3.0, 4.0, 4.0], patience=2, steps=100)
    assert s["steps"] == 8  # uninterrupted: 4.0 at steps 6 and 8 do not beat step 4's 3.0

    out = tmp_path / "b"
    model = build_model("vae", moons.info, seed=0)
    values = iter([5.0, 3.0, 2.0])  # steps 2, 4, and 5: the interrupt's, better than the best
    model.evaluate = lambda x, y=None: {"nll": next(values)}
    trainer = Trainer(model, moons, cfg(patience=2, steps=100), out, plots=False, quiet=True)

    def clock():  # a Ctrl-C during step 5 (the flag is read at the end of each step)
        if trainer.step == 4:
            trainer._stop_requested = True
        return 0.0

    monkeypatch.setattr(E, "clock", clock)
    s = trainer.fit()
    assert (s["steps"], s["interrupted"], s["best_step"]) == (5, True, 4)
    assert load_checkpoint(out / "best.pt")["step"] == 4
    monkeypatch.undo()
    _, s = train(moons, out, [4.0, 4.0], patience=2, steps=100, resume=True)
    assert (s["steps"], s["stopped_early"], s["best_step"]) == (8, True, 4)


def test_overwrite_removes_the_old_checkpoint_before_training(moons, tmp_path):
    out = tmp_path / "r"
    train(moons, out, [5.0], steps=2)
    seen = []

    class Look:
        def on_start(self, trainer):
            seen.append(trainer.checkpoint_path.exists())

    model = build_model("vae", moons.info, seed=0)
    config = cfg(steps=2, eval_every=0)
    Trainer(model, moons, config, out, plots=False, quiet=True, overwrite=True, callbacks=[Look()]).fit()
    assert seen == [False]


def test_best_tracking_without_validation_data_is_refused_at_the_start(moons, tmp_path):
    import dataclasses

    data = dataclasses.replace(moons, val=moons.val.with_storage(moons.val.storage[:0]))  # a file with no val split
    with pytest.raises(ConfigError, match="no validation examples"):
        train(data, tmp_path / "r", [], keep_best=True)
