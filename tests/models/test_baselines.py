"""Independent and GMM baselines on the sampling/density protocol."""

from __future__ import annotations

import pytest
import torch

from deepgen.data import DataInfo
from deepgen.errors import ConfigError, DataError
from deepgen.models.baselines import GaussianMixture, GMMConfig, Independent, IndependentConfig


def test_independent_picks_its_head_from_the_data():
    assert Independent(DataInfo("b", (3,), 2)).likelihood.kind == "bernoulli"
    assert Independent(DataInfo("d", (3,), 17)).likelihood.kind == "categorical"
    assert Independent(DataInfo("m", (2,))).likelihood.kind == "gaussian"
    with pytest.raises(DataError, match="binary") as e:
        Independent(DataInfo("digits", (1, 8, 8), 17), IndependentConfig("bernoulli"))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("levels", "likelihood"), [(2, "auto"), (3, "auto"), (3, "gaussian"), (None, "auto")])
def test_independent_samples_match_its_parameters(levels, likelihood):
    torch.manual_seed(0)
    info = DataInfo("t", (2,), levels)
    model = Independent(info, IndependentConfig(likelihood))
    data = torch.rand(500, 2) if levels is None else torch.randint(0, levels, (500, 2)).float() / (levels - 1)
    model.initialize(data)
    g = torch.Generator().manual_seed(1)
    s = model.sample(4000, generator=g)
    assert s.shape == (4000, 2)
    assert torch.equal(s, model.sample(4000, generator=torch.Generator().manual_seed(1)))
    # the samples reproduce the fitted marginal means (initialize sets them to the data's)
    tol = 0.06 if likelihood == "gaussian" else 0.03  # dequantisation widens the Gaussian
    assert torch.allclose(s.mean(0), data.mean(0), atol=tol)
    with pytest.raises(ConfigError, match="valid"):
        model.sample(2, temperature=0.5)  # the baseline has no sampling options
    ll = model.log_likelihood(data[:5])
    assert ll.values.shape == (5,) and torch.isfinite(ll.values).all()
    expected = "exact" if (levels is None or likelihood == "auto") else "lower bound"
    assert ll.kind.value == expected
    with pytest.raises(ConfigError, match="no likelihood method"):
        model.log_likelihood(data[:5], method="ode")


def test_gmm_temperature_narrows_the_components():
    torch.manual_seed(0)
    model = GaussianMixture(DataInfo("m", (2,)), GMMConfig(components=1))
    model.initialize(torch.randn(256, 2) * 3)
    full = model.sample(4000, generator=torch.Generator().manual_seed(0))
    cold = model.sample(4000, generator=torch.Generator().manual_seed(0), temperature="0.5")
    assert torch.allclose(cold.std(0) / full.std(0), torch.full((2,), 0.5), atol=0.02)
    assert GaussianMixture.describe_sampling(GaussianMixture.sample_options(temperature=0.5)) == "temperature=0.5"
    assert GaussianMixture.describe_sampling(GaussianMixture.sample_options()) == ""
    v = torch.randn(3, 2)
    assert torch.equal(model.log_density(v), model.log_prob(v, None))  # continuous data: no dequantisation
