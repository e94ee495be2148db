"""GAN: sampling options (temperature, truncation), arch choice, no density."""

from __future__ import annotations

import pytest
import torch

from deepgen.data import DataInfo
from deepgen.errors import DataError, NoDensityError
from deepgen.models.gan import GAN, GANConfig

DIGITS = DataInfo("digits", (1, 8, 8), 17)


def _gan(info=DIGITS, **kw):
    torch.manual_seed(0)
    return GAN(info, GANConfig(**{**GAN.test_options, **kw}))


def test_truncated_z_lies_in_the_interval_and_keeps_the_normal_shape():
    model = _gan()
    opts = GAN.sample_options(truncation="1.5")
    z = model._z(20_000, torch.device("cpu"), torch.Generator().manual_seed(0), opts)
    assert z.abs().max() <= 1.5 and z.abs().max() > 1.45
    # the variance of N(0, 1) truncated to [-t, t]: 1 - 2 t phi(t) / (2 Phi(t) - 1) = 0.5507 at t = 1.5
    assert z.var().item() == pytest.approx(0.5507, abs=0.02)
    hot = model._z(20_000, torch.device("cpu"), torch.Generator().manual_seed(0), GAN.sample_options(temperature=2))
    assert hot.std().item() == pytest.approx(2.0, abs=0.05)


def test_samples_are_seeded_and_on_the_lattice():
    model = _gan().eval()
    a = model.sample(5, generator=torch.Generator().manual_seed(3), truncation=0.5)
    b = model.sample(5, generator=torch.Generator().manual_seed(3), truncation=0.5)
    c = model.sample(5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, c)
    k = a * 16
    assert torch.equal(k, k.round())
    assert GAN.describe_sampling(GAN.sample_options(truncation=0.5)) == "truncation=0.5"


def test_arch_and_no_density():
    assert _gan().arch == "dcgan" and _gan(arch="mlp").arch == "mlp"
    with pytest.raises(DataError, match="arch=dcgan needs image data"):
        _gan(DataInfo("moons", (2,)), arch="dcgan")
    with pytest.raises(NoDensityError, match="sampler, not a density"):
        _gan().log_prob(torch.zeros(2, 1, 8, 8))
