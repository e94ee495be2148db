"""``time_limit``: training ends at the steps or the time limit, whichever comes first; a cosine
schedule decays over whichever runs out first; the time of a resumed run adds to its earlier time.

The trainer's clock is scripted: every step takes 10 s, so the step each test expects is known.
"""

from __future__ import annotations

import json
import math

import pytest

from deepgen.cli import build_parser
from deepgen.config import parse_duration
from deepgen.data import DataSpec, load_dataset
from deepgen.errors import ConfigError, DeepgenError
from deepgen.train import TrainConfig, Trainer, build_model
from deepgen.train import engine as E
from deepgen.train.checkpoint import load_checkpoint

SECONDS_PER_STEP = 10.0


@pytest.fixture(scope="module")
def moons():
    return load_dataset(DataSpec("moons", n_train=256))


def train(data, out, monkeypatch, *, resume=False, **kw):
    base = dict(steps=100, batch_size=32, eval_every=0, log_every=1, ckpt_every=0, progress=False)
    model = build_model("vae", data.info, seed=0)
    trainer = Trainer(
        model, data, TrainConfig(**{**base, **kw}), out, plots=False, quiet=True, resume=resume, overwrite=not resume
    )
    monkeypatch.setattr(E, "clock", lambda: trainer.step * SECONDS_PER_STEP)
    return trainer, trainer.fit()


def logged(out) -> list[dict]:
    lines = (json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines())
    return [r for r in lines if r.get("split") == "train"]


def test_training_stops_at_the_step_that_crosses_the_time_limit(moons, tmp_path, monkeypatch):
    t, s = train(moons, tmp_path / "r", monkeypatch, time_limit=35)
    assert (s["steps"], s["elapsed"], s["time_limit_reached"], s["interrupted"]) == (4, 40.0, True, False)
    ckpt = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    assert (ckpt["step"], ckpt["elapsed"]) == (4, 40.0)
    assert [r["wall"] for r in logged(tmp_path / "r")] == [10.0, 20.0, 30.0, 40.0]
    # without a limit the same settings run every step, and the summary says nothing of time
    _, s = train(moons, tmp_path / "n", monkeypatch, steps=6)
    assert s["steps"] == 6 and "time_limit_reached" not in s and "wall" not in logged(tmp_path / "n")[0]


def test_steps_still_end_a_run_that_is_inside_its_time_limit(moons, tmp_path, monkeypatch):
    _, s = train(moons, tmp_path / "r", monkeypatch, steps=3, time_limit=3600)
    assert (s["steps"], s["time_limit_reached"]) == (3, False)


def test_the_cosine_follows_the_time_when_the_time_runs_out_first():
    cfg = TrainConfig(steps=1000, lr_schedule="cosine", time_limit=100)
    cosine = lambda t: 0.5 * (1 + math.cos(math.pi * t))  # noqa: E731
    assert cfg.lr_factor(10, elapsed=50) == pytest.approx(cosine(0.5))  # time: 50%, steps: 1%
    assert cfg.lr_factor(900, elapsed=10) == pytest.approx(cosine(0.9))  # steps further along
    assert cfg.lr_factor(10, elapsed=500) == 0.0  # past the limit: fully decayed
    assert cfg.lr_factor(10) == pytest.approx(cosine(0.01))  # no clock reading: the steps alone
    # warm-up is counted in steps, and a constant schedule ignores the time
    assert TrainConfig(steps=1000, lr_schedule="cosine", warmup_steps=20, time_limit=100).lr_factor(4, 90) == 0.25
    assert TrainConfig(steps=1000, time_limit=100).lr_factor(10, elapsed=90) == 1.0


def test_a_run_stopped_by_the_clock_has_annealed_its_learning_rate(moons, tmp_path, monkeypatch):
    _, s = train(moons, tmp_path / "r", monkeypatch, lr=1e-3, lr_schedule="cosine", time_limit=100)
    assert s["steps"] == 10  # 10 s per step
    lrs = [r["lr"] for r in logged(tmp_path / "r")]
    # step k (0-based) runs at the cosine of max(k / 100 steps, 10 k s / 100 s)
    assert lrs == pytest.approx([1e-3 * 0.5 * (1 + math.cos(math.pi * k / 10)) for k in range(10)])


def test_a_resumed_run_adds_its_time_to_the_earlier_time(moons, tmp_path, monkeypatch):
    out = tmp_path / "r"
    train(moons, out, monkeypatch, time_limit=35)  # stops at step 4, 40 s
    _, s = train(moons, out, monkeypatch, resume=True, time_limit=65)  # 30 s more: step 7
    assert (s["steps"], s["elapsed"], s["time_limit_reached"]) == (7, 70.0, True)
    # resumed again with the same limit, a run that has used its time takes no step
    _, s = train(moons, out, monkeypatch, resume=True, time_limit=65)
    assert (s["steps"], s["time_limit_reached"]) == (7, True)
    # with a cosine schedule the limit shapes the learning rates, so it may not change on resume
    train(moons, tmp_path / "c", monkeypatch, lr_schedule="cosine", time_limit=35)
    with pytest.raises(DeepgenError, match="time_limit"):
        train(moons, tmp_path / "c", monkeypatch, resume=True, lr_schedule="cosine", time_limit=65)


@pytest.mark.parametrize(
    "text, seconds",
    [("90", 90.0), (7.5, 7.5), ("2h", 7200.0), ("45m", 2700.0), ("1h30m", 5400.0), ("1.5h", 5400.0), ("10m30s", 630.0)],
)
def test_durations_read_as_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2x", "h", "1h1h", "2 hours", "-5m"])
def test_a_duration_that_cannot_be_read_is_refused(text):
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(text)


def test_the_cli_reads_a_time_limit_and_refuses_a_bad_one(capsys):
    args = build_parser().parse_args(["train", "vae", "--data", "digits", "--time-limit", "1h30m"])
    assert args.time_limit == 5400.0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "vae", "--data", "digits", "--time-limit", "soon"])
    assert "duration" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="time_limit"):
        TrainConfig(time_limit=0)


def test_an_old_cosine_run_without_a_time_limit_cannot_resume_with_one(moons, tmp_path, monkeypatch):
    """A checkpoint written before time_limit existed has no such field: it ran without one, and with
    a cosine schedule a limit added on resume would reshape its learning rates."""
    import torch

    out = tmp_path / "r"
    train(moons, out, monkeypatch, steps=3, lr_schedule="cosine")
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    del ckpt["train_config"]["time_limit"], ckpt["elapsed"]
    torch.save(ckpt, out / "checkpoint.pt")
    with pytest.raises(DeepgenError, match=r"time_limit \(run: None, now: 65"):
        train(moons, out, monkeypatch, resume=True, steps=3, lr_schedule="cosine", time_limit=65)
    _, s = train(moons, out, monkeypatch, resume=True, steps=3, lr_schedule="cosine")  # as it ran: fine
    assert s["steps"] == 3 and "time_limit_reached" not in s


def test_an_evaluation_that_uses_up_the_time_makes_its_step_the_last(moons, tmp_path, monkeypatch):
    """Each evaluation takes 20 s here: the one at step 3 ends past the 35 s limit, so step 3 is the
    last, evaluated and checkpointed once (not a step 4 with a second evaluation)."""
    model = build_model("vae", moons.info, seed=0)
    evaluations = []
    evaluate = model.evaluate
    model.evaluate = lambda x, y=None: evaluations.append(trainer.step) or evaluate(x, y)  # per batch
    cfg = TrainConfig(steps=100, batch_size=32, eval_every=3, log_every=1, ckpt_every=0, progress=False, time_limit=35)
    trainer = Trainer(model, moons, cfg, tmp_path / "r", plots=False, quiet=True)
    monkeypatch.setattr(E, "clock", lambda: trainer.step * SECONDS_PER_STEP + 20.0 * len(set(evaluations)))
    s = trainer.fit()
    assert (s["steps"], s["time_limit_reached"], s["elapsed"]) == (3, True, 50.0)
    lines = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if r["split"] == "val"] == [3]
    assert (load_checkpoint(tmp_path / "r" / "checkpoint.pt")["step"], sorted(set(evaluations))) == (3, [3])
