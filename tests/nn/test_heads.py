"""Likelihood heads: masses sum to 1 over the lattice, the Gaussian integrates to 1, samples and
means lie where they should, wrong choices fail in one line; and arch_for."""

from __future__ import annotations

import itertools

import pytest
import torch

from deepgen.data import DataInfo
from deepgen.errors import DataError
from deepgen.nn import arch_for, likelihood_head


def _lattice(levels, d):
    pts = torch.tensor(list(itertools.product(range(levels), repeat=d)), dtype=torch.float64)
    return pts / (levels - 1)


@pytest.mark.parametrize(
    ("choice", "levels"), [("bernoulli", 2), ("categorical", 3), ("categorical", 2), ("logistic", 4)]
)
@pytest.mark.parametrize("shared", [True, False])
def test_mass_heads_sum_to_one_over_the_lattice(choice, levels, shared):
    d = 3
    head = likelihood_head(DataInfo("tiny", (d,), levels), choice)
    assert head.is_mass and not head.is_bound and head.kind == choice
    x = _lattice(levels, d)
    g = torch.Generator().manual_seed(0)
    if shared:  # one parameter set broadcast over every lattice point (the independent baseline)
        params = 2 * torch.randn(1, head.params_per_dim * d, generator=g, dtype=torch.float64)
    else:  # different parameters per point: each row is its own distribution, so use one row for all
        row = 2 * torch.randn(1, head.params_per_dim * d, generator=g, dtype=torch.float64)
        params = row.expand(len(x), -1).clone()
    lp = head.log_prob(params, x)
    assert lp.shape == (len(x),)
    assert torch.exp(lp).sum().item() == pytest.approx(1.0, abs=1e-9)


def test_categorical_shared_table_and_per_example_paths_agree():
    info = DataInfo("tiny", (2, 2, 2), 5)
    head = likelihood_head(info, "categorical")
    params = torch.randn(1, 5 * 8)
    x = torch.randint(0, 5, (6, 2, 2, 2)).float() / 4
    assert torch.allclose(head.log_prob(params, x), head.log_prob(params.expand(6, -1), x))


def test_gaussian_integrates_to_one_in_1d_and_is_a_bound_on_discrete_data():
    for std in ("shared", "per-example"):
        head = likelihood_head(DataInfo("line", (1,)), "gaussian", std=std)
        assert not head.is_mass and not head.is_bound and head.params_per_dim == (1 if std == "shared" else 2)
        if std == "shared":
            with torch.no_grad():
                head.log_std.fill_(-0.7)
        xs = torch.linspace(-10, 10, 20001, dtype=torch.float64).unsqueeze(1)
        params = torch.tensor([[0.3, -0.7]], dtype=torch.float64)[:, : head.params_per_dim]
        dens = torch.exp(head.log_prob(params, xs))
        assert (dens.sum() * (xs[1] - xs[0])).item() == pytest.approx(1.0, abs=1e-6)
    head = likelihood_head(DataInfo("digits", (4,), 17), "gaussian")
    assert head.is_bound
    assert "log_std" in dict(head.named_parameters())  # the shared std is the head's parameter


@pytest.mark.parametrize(
    ("choice", "levels"),
    [("bernoulli", 2), ("categorical", 5), ("logistic", 17), ("gaussian", 17), ("gaussian", None)],
)
def test_samples_on_the_lattice_and_means_in_range(choice, levels):
    info = DataInfo("t", (1, 3, 3), levels)
    head = likelihood_head(info, choice, std="per-example")
    g = torch.Generator().manual_seed(0)
    params = 3 * torch.randn(64, head.params_per_dim, 3, 3, generator=g)
    s = head.sample(params, g)
    assert s.shape == (64, 1, 3, 3) and torch.isfinite(s).all()
    m = head.mean(params)
    assert m.shape == (64, 1, 3, 3)
    s1 = head.sample(params[:1], g, n=10)  # one parameter set, ten draws
    assert s1.shape == (10, 1, 3, 3)
    if levels is not None:
        for t in (s, s1):
            k = t * (levels - 1)
            assert torch.equal(k, k.round()) and t.min() >= 0 and t.max() <= 1
        assert m.min() >= 0 and m.max() <= 1


@pytest.mark.parametrize(("choice", "levels"), [("bernoulli", 2), ("categorical", 4), ("logistic", 6)])
def test_mass_head_means_equal_the_enumerated_expectation(choice, levels):
    head = likelihood_head(DataInfo("t", (1,), levels), choice)
    params = torch.randn(3, head.params_per_dim, dtype=torch.float64)
    values = torch.arange(levels, dtype=torch.float64) / (levels - 1)
    probs = torch.stack([torch.exp(head.log_prob(params, v.expand(3, 1))) for v in values], 1)  # (3, L)
    assert torch.allclose(head.mean(params)[:, 0], (probs * values).sum(1))


def test_wrong_choice_for_the_data_is_one_line():
    digits = DataInfo("digits", (1, 8, 8), 17)
    moons = DataInfo("moons", (2,))
    for info, choice, words in [
        (digits, "bernoulli", "17 levels"),
        (moons, "logistic", "continuous"),
        (moons, "categorical", "continuous"),
    ]:
        with pytest.raises(DataError, match=words) as e:
            likelihood_head(info, choice, model="vae")
        assert "\n" not in str(e.value) and str(e.value).startswith("vae:")
    assert likelihood_head(DataInfo("b", (4,), 2)).kind == "bernoulli"
    assert likelihood_head(digits).kind == "logistic"
    assert likelihood_head(moons).kind == "gaussian"


def test_arch_for():
    digits, moons = DataInfo("digits", (1, 8, 8), 17), DataInfo("moons", (2,))
    assert arch_for(digits, "auto") == "conv" and arch_for(moons, "auto") == "mlp"
    assert arch_for(digits, "mlp") == "mlp" and arch_for(digits, "auto", conv="dcgan") == "dcgan"
    with pytest.raises(DataError, match=r"arch=conv needs image data.*moons has shape \(2,\)") as e:
        arch_for(moons, "conv", model="vae")
    assert "\n" not in str(e.value)
