"""Callbacks: when each hook runs, that running them never changes training, and the ready-made ones."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from deepgen import registry
from deepgen.data import DataSpec, load_dataset
from deepgen.models.base import GenerativeModel
from deepgen.train import Callback, TrainConfig, Trainer, run_plots_callbacks


@pytest.fixture(scope="module")
def moons():
    return load_dataset(DataSpec("moons", n_train=256))


def cfg(**kw):
    base = dict(steps=6, batch_size=32, progress=False, eval_every=3, log_every=2, ckpt_every=0, threads=1)
    return TrainConfig(**{**base, **kw})


class Noisy(GenerativeModel):
    """Draws from the global RNG in every loss, so any RNG a callback consumed would show in the weights."""

    family = "baseline"
    train_defaults = {}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        self.net = nn.Linear(2, 2)

    def loss(self, x, y=None):
        noise = torch.randn_like(x)
        return {"loss": (self.net(x + noise) - noise).pow(2).mean()}

    @torch.no_grad()
    def evaluate(self, x, y=None):
        return {"mse": float(self.net(x).pow(2).mean())}

    @torch.no_grad()
    def sample(self, n, *, generator=None):
        return self.net(torch.randn(n, 2, generator=generator))


class Recorder(Callback):
    every = 2

    def __init__(self):
        self.events = []

    def on_start(self, trainer):
        self.events.append(("start", trainer.step))

    def on_step(self, trainer, step):
        assert trainer.model.training
        trainer.model.eval()  # a careless callback: the engine puts training mode back
        torch.randn(100)  # and one that draws random numbers: the engine's fork discards them
        trainer.model.sample(8)
        self.events.append(("step", step))

    def on_log(self, trainer, step, record):
        self.events.append(("log", step, round(record["loss"], 6) > 0))

    def on_eval(self, trainer, step, metrics):
        self.events.append(("eval", step, sorted(metrics)))

    def on_end(self, trainer, summary):
        self.events.append(("end", trainer.model.training, summary["steps"]))
        return {"thing": "path/to/thing.png"}


def test_hooks_run_when_documented_and_never_change_training(moons, tmp_path):
    with registry.temporary("test-noisy", Noisy):
        torch.manual_seed(0)
        plain = Noisy(moons.info)
        Trainer(plain, moons, cfg(), tmp_path / "plain", plots=False, quiet=True).fit()
        torch.manual_seed(0)
        watched, rec = Noisy(moons.info), Recorder()
        summary = Trainer(watched, moons, cfg(), tmp_path / "watched", callbacks=[rec], quiet=True).fit()
    assert rec.events == [
        ("start", 0),
        ("log", 2, True),
        ("step", 2),
        ("eval", 3, ["mse"]),
        ("log", 4, True),
        ("step", 4),
        ("log", 6, True),
        ("eval", 6, ["mse"]),
        ("step", 6),
        ("end", False, 6),
    ]
    assert summary["plots"] == {"thing": "path/to/thing.png"}
    assert not (tmp_path / "watched" / "loss.png").exists()  # callbacks given: no default plots
    for a, b in zip(plain.parameters(), watched.parameters()):
        assert torch.equal(a, b)


def test_ready_made_plot_callbacks(moons, tmp_path):
    with registry.temporary("test-noisy", Noisy):
        t = Trainer(
            Noisy(moons.info), moons, cfg(), tmp_path, callbacks=run_plots_callbacks(sample_every=3), quiet=True
        )
        summary = t.fit()
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_000003.png", "step_000006.png"]
    assert set(summary["plots"]) == {"loss", "samples"} and (tmp_path / "loss.png").exists()
    assert not t.model.training  # fit() leaves the model in eval mode, plots or not


def test_plots_shorthand(moons, tmp_path):
    with registry.temporary("test-noisy", Noisy):
        Trainer(Noisy(moons.info), moons, cfg(steps=2), tmp_path / "default", quiet=True).fit()
        Trainer(Noisy(moons.info), moons, cfg(steps=2), tmp_path / "off", plots=False, quiet=True).fit()
        both = [Recorder()]
        Trainer(Noisy(moons.info), moons, cfg(steps=2), tmp_path / "both", callbacks=both, plots=True, quiet=True).fit()
    assert (tmp_path / "default" / "samples.png").exists() and not (tmp_path / "off" / "samples.png").exists()
    assert (tmp_path / "both" / "samples.png").exists() and both[0].events[-1][0] == "end"


def test_engine_imports_no_plotting():
    code = "import sys, deepgen.train; sys.exit(int('deepgen.plots' in sys.modules or 'matplotlib' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_metrics_jsonl_unchanged_by_callbacks(moons, tmp_path):
    with registry.temporary("test-noisy", Noisy):
        torch.manual_seed(0)
        Trainer(Noisy(moons.info), moons, cfg(), tmp_path / "a", plots=False, quiet=True).fit()
        torch.manual_seed(0)
        Trainer(Noisy(moons.info), moons, cfg(), tmp_path / "b", callbacks=[Recorder()], quiet=True).fit()
    strip = lambda p: [  # noqa: E731
        {k: v for k, v in json.loads(line).items() if k not in ("time", "examples_per_s")} for line in p.open()
    ]
    assert strip(tmp_path / "a" / "metrics.jsonl") == strip(tmp_path / "b" / "metrics.jsonl")


def test_plot_callback_draws_samples_with_the_options_given(moons, tmp_path, monkeypatch):
    """compare passes the row's sampling options, so samples.png is drawn once, as the row samples."""
    import deepgen.plots as plots
    from deepgen.train.callbacks import PlotCallback

    seen = []
    real = plots.save_samples

    def spy(model, path, n=64, seed=0, data=None, options=None, samples=None):
        seen.append((seed, options))
        return real(model, path, n=n, seed=seed, data=data, options=options, samples=samples)

    monkeypatch.setattr(plots, "save_samples", spy)
    with registry.temporary("test-noisy", Noisy):
        cb = [PlotCallback(options={}, seed=3)]
        Trainer(Noisy(moons.info), moons, cfg(steps=2), tmp_path, callbacks=cb, quiet=True).fit()
    assert seen == [(3, {})] and (tmp_path / "samples.png").exists()
