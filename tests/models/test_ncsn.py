"""NCSN: annealed Langevin with the exact score samples a Gaussian, denoising and sliced score
matching rank candidate scores alike (they differ by a constant), sigma_1 from the data, training."""

from __future__ import annotations

import math

import pytest
import torch

from deepgen.data import DataInfo
from deepgen.errors import NoDensityError
from deepgen.models.energy import NCSN, NCSNConfig
from deepgen.train import TrainConfig, Trainer

INFO = DataInfo("toy", (2,))


def _model(**options) -> NCSN:
    torch.manual_seed(0)
    return NCSN(INFO, NCSNConfig(hidden=(16,), **options))


def _sigma_of_time(m: NCSN, t: torch.Tensor) -> torch.Tensor:
    lo, hi = math.log(float(m.sigmas[-1])), math.log(float(m.sigmas[0]))
    return torch.exp(lo + t.double() / 999.0 * (hi - lo)).to(torch.float32)


def _use_score(m: NCSN, score):
    """Replace the network by a given score s(x, sigma): f = sigma s."""

    def network(x, time, y):
        sigma = _sigma_of_time(m, time).view(-1, 1)
        return (sigma * score(x, sigma),)

    m.network = network


def test_annealed_langevin_with_the_exact_score_samples_the_data_gaussian():
    m = _model(sigma_max=5.0, levels=10)
    mean, std = torch.tensor([2.0, -1.0]), 0.5
    _use_score(m, lambda x, s: -(x - mean) / (std**2 + s**2))
    x = m.sample(4000, generator=torch.Generator().manual_seed(0), steps_per_level=100, eps=2e-4)
    assert torch.allclose(x.mean(0), mean, atol=0.05)
    assert torch.allclose(x.std(0), torch.full((2,), std), atol=0.05)


@pytest.mark.parametrize("objective", ["dsm", "ssm"])
def test_the_exact_score_has_the_lowest_loss(objective):
    """Data N(0, I): p_sigma = N(0, (1 + sigma^2) I). Both objectives equal E|s - grad log p_sigma|^2 / 2
    (sigma^2-weighted) up to a constant, so they rank candidate scores alike."""
    m = _model(sigma_max=2.0, levels=4, objective=objective)
    x = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(1))
    losses = {}
    for name, scale in (("exact", 1.0), ("too flat", 0.5), ("too sharp", 1.5)):
        _use_score(m, lambda v, s, c=scale: -c * v / (1 + s**2))
        m.score = lambda v, sigma, y=None, c=scale: -c * v / (1 + sigma.view(-1, 1) ** 2)
        torch.manual_seed(2)
        losses[name] = m.loss(x)["loss"].item()
    assert losses["exact"] < losses["too flat"] and losses["exact"] < losses["too sharp"], losses


def test_dsm_and_ssm_differ_by_a_constant():
    x = torch.randn(40_000, 2, generator=torch.Generator().manual_seed(3))
    diffs = []
    for objective in ("dsm", "ssm"):
        m = _model(sigma_max=2.0, levels=4, objective=objective)
        vals = []
        for scale in (1.0, 0.5):
            _use_score(m, lambda v, s, c=scale: -c * v / (1 + s**2))
            m.score = lambda v, sigma, y=None, c=scale: -c * v / (1 + sigma.view(-1, 1) ** 2)
            torch.manual_seed(4)
            vals.append(m.loss(x)["loss"].item())
        diffs.append(vals[1] - vals[0])
    assert diffs[0] == pytest.approx(diffs[1], rel=0.1), diffs


def test_sigma_max_comes_from_the_data_and_there_is_no_density(moons):
    m = _model()
    m.initialize(moons.train.x[:256])
    v = moons.train.x[:256].double()
    assert float(m.sigmas[0]) == pytest.approx(torch.cdist(v, v).max().item(), rel=1e-5)
    assert float(m.sigmas[-1]) == pytest.approx(0.01)
    with pytest.raises(NoDensityError, match="score-sde"):
        m.log_likelihood(moons.test.x[:2])


@pytest.mark.parametrize("objective", ["dsm", "ssm"])
def test_training_lowers_the_held_out_loss(moons, tmp_path, objective):
    torch.manual_seed(0)
    m = NCSN(moons.info, NCSNConfig(hidden=(64, 64), objective=objective))
    m.initialize(moons.train.x[:128])
    before = m.evaluate(moons.test.x[:1000])["loss"]
    cfg = TrainConfig(
        steps=300, batch_size=128, lr=2e-3, seed=0, progress=False, eval_every=0, log_every=50, ckpt_every=0
    )
    Trainer(m, moons, cfg, tmp_path, plots=False, quiet=True).fit()
    after = m.evaluate(moons.test.x[:1000])["loss"]
    assert after < before - 0.05, (before, after)
