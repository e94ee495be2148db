"""Deep EBM: Langevin chains sample a known Gaussian energy, AIS recovers its log Z, training lowers
the data's energy below noise, and AIS is refused where it cannot work."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from deepgen.data import DataInfo
from deepgen.errors import DataError
from deepgen.models.base import DensityKind
from deepgen.models.energy import EBM, EBMConfig
from deepgen.train import TrainConfig, Trainer

MEAN, STD = torch.tensor([1.0, -0.5]), 0.7


class Quadratic(nn.Module):
    """E(x) = |x - m|^2 / (2 s^2): the energy of N(m, s^2 I), whose log Z is d/2 log(2 pi s^2)."""

    def forward(self, x):
        return (((x - MEAN) ** 2).sum(1, keepdim=True)) / (2 * STD**2)


def _gaussian_ebm(**options) -> EBM:
    m = EBM(DataInfo("toy", (2,)), EBMConfig(**options))
    m.energy_net = Quadratic()
    return m


def test_langevin_chains_sample_a_known_gaussian():
    m = _gaussian_ebm()  # vectors: true Langevin, eps 0.01, sigma sqrt(2 eps)
    x = m.sample(4000, generator=torch.Generator().manual_seed(0), steps=1500)
    assert torch.allclose(x.mean(0), MEAN, atol=0.05)
    assert torch.allclose(x.std(0), torch.full((2,), STD), atol=0.05)


def test_ais_recovers_the_log_partition_function():
    m = _gaussian_ebm(ais_chains=300, ais_steps=300, ais_step=0.1)
    est, se = m.ais_log_partition(generator=torch.Generator().manual_seed(0))
    exact = math.log(2 * math.pi * STD**2)
    assert abs(est - exact) < max(4 * se, 0.05), (est, exact, se)
    x = torch.randn(5, 2)
    ll = m.log_likelihood(x, method="ais")
    true = torch.distributions.Normal(MEAN, STD).log_prob(x).sum(1)
    assert ll.kind == DensityKind.ESTIMATE and ll.shared_stderr is not None
    assert torch.allclose(ll.values, true, atol=0.1)
    assert m.log_likelihood(x).kind == DensityKind.UNNORMALISED


def test_ais_is_refused_in_high_dimension(digits):
    m = EBM(digits.info, EBMConfig(channels=(8, 16)))
    with pytest.raises(DataError, match="ais_max_dim"):
        m.log_likelihood(digits.test.x[:2], method="ais")


def test_training_lowers_the_energy_of_data_below_noise(moons, tmp_path):
    torch.manual_seed(0)
    m = EBM(moons.info, EBMConfig(hidden=(64, 64), buffer_size=1000, sgld_steps=20))
    before = m.buffer.clone()
    cfg = TrainConfig(
        steps=300,
        batch_size=128,
        lr=1e-3,
        betas=(0.0, 0.999),
        seed=0,
        progress=False,
        eval_every=0,
        log_every=50,
        ckpt_every=0,
    )
    Trainer(m, moons, cfg, tmp_path, plots=False, quiet=True).fit()
    assert not torch.equal(before, m.buffer)  # negatives went back into the replay buffer
    with torch.no_grad():
        e_data = m.energy(moons.test.x).mean()
        e_noise = m.energy(6 * torch.rand(2000, 2) - 3).mean()
    assert e_data < e_noise - 1.0, (e_data, e_noise)
