"""Multi-stage models: a fresh run starts from part of a trained run, and its checkpoint stands alone."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from deepgen import registry
from deepgen.data import DataSpec, load_dataset
from deepgen.errors import CheckpointError, ConfigError, DeepgenError
from deepgen.models.base import GenerativeModel
from deepgen.train import TrainConfig, Trainer, init_from, load_run
from deepgen.train.checkpoint import load_checkpoint
from deepgen.train.run import parse_init_spec


@dataclass(frozen=True)
class PartsConfig:
    hidden: int = 8


class TwoPart(GenerativeModel):
    """An "encoder" and a "head", like a VQ-VAE's autoencoder and the prior trained on top of it."""

    family = "baseline"
    Config = PartsConfig

    def __init__(self, info, config=None):
        super().__init__(info, config)
        self.encoder = nn.Sequential(nn.Linear(2, self.config.hidden), nn.Tanh())
        self.head = nn.Linear(self.config.hidden, 2)
        self.seen_at_init = None

    def initialize(self, x):  # runs after init_from: data-dependent init sees the trained part
        self.seen_at_init = self.encoder[0].weight.detach().clone()

    def loss(self, x, y=None):
        return {"loss": (self.head(self.encoder(x)) - x).pow(2).mean()}

    @torch.no_grad()
    def sample(self, n, *, generator=None):
        return self.head(self.encoder(torch.randn(n, 2, generator=generator)))


class Wrapper(GenerativeModel):
    """A second stage holding a whole first-stage model as its ``stage1`` submodule."""

    family = "baseline"

    def __init__(self, info, config=None):
        super().__init__(info, config)
        self.stage1 = TwoPart(info)
        self.prior = nn.Linear(2, 2)

    def loss(self, x, y=None):
        return {"loss": self.prior(self.stage1.encoder(x)[:, :2]).pow(2).mean()}

    def sample(self, n, *, generator=None):
        return torch.randn(n, 2, generator=generator)


@pytest.fixture(scope="module")
def moons():
    return load_dataset(DataSpec("moons", n_train=256))


@pytest.fixture
def models():
    with registry.temporary("test-two-part", TwoPart), registry.temporary("test-wrapper", Wrapper):
        yield


def cfg(**kw):
    return TrainConfig(**{**dict(steps=4, batch_size=32, progress=False, eval_every=0, threads=1, lr=0.05), **kw})


def source_run(moons, out):
    torch.manual_seed(0)
    m = TwoPart(moons.info)
    Trainer(m, moons, cfg(), out, plots=False, quiet=True).fit()
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_round_trip_without_the_source(moons, models, tmp_path):
    trained = source_run(moons, tmp_path / "stage1")
    torch.manual_seed(1)
    m = TwoPart(moons.info)
    head0 = m.head.weight.detach().clone()
    t = Trainer(
        m, moons, cfg(steps=3), tmp_path / "stage2", plots=False, quiet=True, init_from=f"{tmp_path}/stage1:encoder"
    )
    t.fit()
    assert torch.equal(m.seen_at_init, trained["encoder.0.weight"])  # loaded before initialize()
    assert not torch.equal(head0, trained["head.weight"])  # the head was not loaded
    record = json.loads((tmp_path / "stage2" / "config.json").read_text())["init_from"]
    assert record["source"] == record["target"] == "encoder" and record["tensors"] == 2 and record["source_step"] == 4

    shutil.rmtree(tmp_path / "stage1")  # the new run must not need the old one any more
    assert load_run(tmp_path / "stage2").step == 3
    resumed = Trainer(
        TwoPart(moons.info), moons, cfg(steps=5), tmp_path / "stage2", plots=False, quiet=True, resume=True
    )
    resumed.fit()
    assert load_checkpoint(tmp_path / "stage2")["init_from"]["spec"].endswith("stage1:encoder")
    assert "init_from" in json.loads((tmp_path / "stage2" / "config.json").read_text())  # kept across resume


def test_whole_run_into_a_submodule_and_the_seeds_are_untouched(moons, models, tmp_path):
    trained = source_run(moons, tmp_path / "stage1")
    torch.manual_seed(2)
    w = Wrapper(moons.info)
    prior0 = w.prior.weight.detach().clone()
    init_from(w, f"{tmp_path}/stage1:=stage1")
    for k, v in trained.items():
        assert torch.equal(w.stage1.state_dict()[k], v), k
    assert torch.equal(w.prior.weight, prior0)


def test_clear_errors(moons, models, tmp_path):
    source_run(moons, tmp_path / "stage1")
    run = tmp_path / "stage1"
    m = TwoPart(moons.info)
    with pytest.raises(ConfigError, match=r"has no submodule 'decoder' \(its submodules: encoder, head\)"):
        init_from(m, f"{run}:decoder")
    with pytest.raises(ConfigError, match=r"has no submodule 'stage1'.*write .*stage1:=stage1"):
        init_from(Wrapper(moons.info), f"{run}:stage1")
    with pytest.raises(ConfigError, match=r"head.weight has shape \(2, 16\) in the new model but \(2, 8\)"):
        init_from(TwoPart(moons.info, PartsConfig(hidden=16)), f"{run}:head")
    with pytest.raises(
        ConfigError, match=r"the parts differ: 6 tensor\(s\) of the new part not in the run \(e.g. stage1.encoder"
    ):
        init_from(Wrapper(moons.info), str(run))  # whole into whole: a different model
    with pytest.raises(ConfigError, match="is not a submodule path"):
        init_from(m, f"{run}:enc oder")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        init_from(m, f"{tmp_path}/nowhere:encoder")
    assert parse_init_spec(str(run)) == (run, "", "")
    assert parse_init_spec("runs/a:x.y=z") == (parse_init_spec("runs/a")[0], "x.y", "z")


def test_refused_when_resuming_an_existing_run(moons, models, tmp_path):
    source_run(moons, tmp_path / "stage1")
    source_run(moons, tmp_path / "stage2")
    t = Trainer(TwoPart(moons.info), moons, cfg(steps=6), tmp_path / "stage2", resume=True, quiet=True,
                plots=False, init_from=f"{tmp_path}/stage1:encoder")  # fmt: skip
    with pytest.raises(DeepgenError, match="--init-from starts a fresh run"):
        t.fit()
    # --resume of a folder without a checkpoint is a fresh start, where init_from applies
    t = Trainer(TwoPart(moons.info), moons, cfg(), tmp_path / "new", resume=True, quiet=True, plots=False,
                init_from=f"{tmp_path}/stage1:encoder")  # fmt: skip
    t.fit()
    assert t.init_source is not None


def test_copied_weights_survive_a_data_dependent_initialize(moons, tmp_path):
    """gmm.initialize() places components on data points: it must not undo what --init-from copied."""
    from deepgen.train import build_model

    cfg = TrainConfig(steps=30, batch_size=64, progress=False, eval_every=0, ckpt_every=0)
    source = build_model("gmm", moons.info, {"components": 3}, seed=0)
    Trainer(source, moons, cfg, tmp_path / "src", plots=False, quiet=True).fit()
    trained = {k: v.clone() for k, v in source.state_dict().items()}
    fresh = build_model("gmm", moons.info, {"components": 3}, seed=1)
    one_step = TrainConfig(steps=1, batch_size=64, lr=1e-12, progress=False, eval_every=0, ckpt_every=0)
    Trainer(fresh, moons, one_step, tmp_path / "dst", plots=False, quiet=True, init_from=str(tmp_path / "src")).fit()
    for k, v in fresh.state_dict().items():  # one step at lr 1e-12 moves nothing measurable
        assert torch.allclose(v, trained[k], atol=1e-6), k
