"""RBM: log Z against brute force for every unit type, AIS against the exact value, CD-k against the
exact gradient, Gibbs sampling against the exact distribution, and training through the trainer."""

from __future__ import annotations

import math

import pytest
import torch

from deepgen.data import DataInfo
from deepgen.errors import ConfigError, DataError
from deepgen.models.base import DensityKind
from deepgen.models.energy.rbm import RBM, RBMConfig, all_states
from deepgen.train import TrainConfig, Trainer

BITS = DataInfo("bits", (5,), levels=2)
REALS = DataInfo("reals", (2,))


def _rbm(info, scale=0.7, seed=0, **options) -> RBM:
    torch.manual_seed(seed)
    m = RBM(info, RBMConfig(**options)).double()
    with torch.no_grad():
        for p in (m.W, m.b, m.c):
            p.copy_(scale * torch.randn(p.shape, dtype=torch.float64))
    return m


def _states(kind, n):
    return all_states(kind, n, torch.float64)


@pytest.mark.parametrize("visible", ["bernoulli", "spin"])
@pytest.mark.parametrize("hidden_units", ["bernoulli", "spin"])
def test_log_partition_is_the_brute_force_sum_over_both_layers(visible, hidden_units):
    m = _rbm(BITS, hidden=3, visible=visible, hidden_units=hidden_units)
    v, h = _states(visible, 5), _states(hidden_units, 3)
    vv, hh = v.repeat_interleave(len(h), 0), h.repeat(len(v), 1)
    brute = torch.logsumexp(-m.energy(vv, hh), 0).item()
    assert m.enumerable_layer() == ("hidden", 3)
    assert m.exact_log_partition() == pytest.approx(brute, abs=1e-10)
    by_visible = _rbm(BITS, hidden=8, visible=visible, hidden_units=hidden_units)  # now 5 visible < 8 hidden
    v8, h8 = _states(visible, 5), _states(hidden_units, 8)
    joint = torch.logsumexp(-by_visible.energy(v8.repeat_interleave(256, 0), h8.repeat(32, 1)), 0).item()
    assert by_visible.enumerable_layer() == ("visible", 5)
    assert by_visible.exact_log_partition() == pytest.approx(joint, abs=1e-9)


def test_gaussian_hidden_units_are_integrated_out_as_in_the_lectures():
    """H(s, l) = sum l^2 / 2 - h.s - s^T W l: F(s) from quadrature over one hidden unit."""
    m = _rbm(BITS, hidden=1, visible="spin", hidden_units="gaussian")
    s = _states("spin", 5)
    grid = torch.linspace(-30, 30, 60001, dtype=torch.float64)
    dl = grid[1] - grid[0]
    e = -m.energy(s.repeat_interleave(len(grid), 0), grid.repeat(len(s)).unsqueeze(1)).view(len(s), -1)
    quad = torch.logsumexp(e, 1) + math.log(dl)
    assert torch.allclose(-m.free_energy(s), quad, atol=1e-6)
    assert m.enumerable_layer() == ("visible", 5)  # the Gaussian layer cannot be enumerated
    ll = m.log_likelihood((s + 1) / 2)  # data are 0/1; the model maps them to spins
    assert torch.logsumexp(ll.values.double(), 0).item() == pytest.approx(0.0, abs=1e-5)


def test_gaussian_bernoulli_density_integrates_to_one():
    m = _rbm(REALS, scale=0.8, hidden=3)
    assert m.visible == "gaussian" and m.enumerable_layer() == ("hidden", 3)
    g = torch.linspace(-12, 12, 801, dtype=torch.float64)
    xy = torch.cartesian_prod(g, g)
    ll = m.log_likelihood(xy).values.double()
    mass = (ll.exp().sum() * (g[1] - g[0]) ** 2).item()
    assert mass == pytest.approx(1.0, abs=1e-4)


def test_a_binary_rbm_is_a_probability_mass():
    m = _rbm(BITS, hidden=4)
    ll = m.log_likelihood(_states("bernoulli", 5)).values.double()
    assert torch.logsumexp(ll, 0).item() == pytest.approx(0.0, abs=1e-9)
    assert m.density_kind == DensityKind.EXACT and "enumerated" in m.log_likelihood(_states("bernoulli", 5)).method


@pytest.mark.parametrize("hidden_units", ["bernoulli", "gaussian"])
def test_ais_is_within_its_error_bars_of_the_exact_log_partition(hidden_units):
    info = DataInfo("bits", (12,), levels=2)
    exact = _rbm(info, scale=0.3, hidden=10, hidden_units=hidden_units, seed=1)
    with torch.no_grad():
        exact.base_bias.copy_(0.3 * torch.randn(12, dtype=torch.float64))
    ais = RBM(info, RBMConfig(hidden=10, hidden_units=hidden_units, exact_max_units=0, ais_chains=200)).double()
    ais.load_state_dict(exact.state_dict())
    assert ais.density_kind == DensityKind.ESTIMATE
    log_z = exact.exact_log_partition()
    est, se = ais.ais_log_partition(steps=500, generator=torch.Generator().manual_seed(0))
    assert abs(est - log_z) < max(4 * se, 0.02) and abs(est - log_z) < 0.1, (est, log_z, se)
    x = all_states("bernoulli", 12, torch.float64)[::97]
    ll = ais.log_likelihood(x)
    assert ll.kind == DensityKind.ESTIMATE and ll.shared_stderr is not None and "AIS" in ll.method
    assert torch.allclose(ll.values, exact.log_likelihood(x).values, atol=0.1)


def _exact_gradient(m: RBM, v: torch.Tensor) -> torch.Tensor:
    """-d mean log p(v) / dW by autograd through the enumerated log Z."""
    w = m.W.detach().clone().requires_grad_(True)
    states = _states("bernoulli", m.config.hidden)
    f_v = -(v @ m.b + torch.nn.functional.softplus(v @ w + m.c).sum(1))
    g_h = -(states @ m.c + torch.nn.functional.softplus(states @ w.T + m.b).sum(1))
    loss = f_v.mean() + torch.logsumexp(-g_h, 0)
    (grad,) = torch.autograd.grad(loss, w)
    return grad


def test_cd_k_gradient_approaches_the_exact_gradient_as_k_grows():
    m = _rbm(BITS, scale=1.0, hidden=4, seed=3)
    data = _states("bernoulli", 5)[torch.tensor([0, 3, 7, 12, 30, 31])]
    exact = _exact_gradient(m, data)
    v0 = data.repeat(4000, 1)
    errors = {}
    for k in (1, 3, 30):
        torch.manual_seed(0)
        with torch.no_grad():
            g = m.gradients(v0, m.gibbs(v0, k))["W"]
        errors[k] = (g - exact).norm().item() / exact.norm().item()
    assert errors[1] > errors[3] > errors[30], errors
    assert errors[30] < 0.05, errors


def test_gibbs_sampling_matches_the_exact_distribution():
    """Chi-square goodness of fit of 20,000 Gibbs samples over the 16 states of 4 visible units."""
    info = DataInfo("bits", (4,), levels=2)
    m = _rbm(info, scale=1.0, hidden=3, seed=2).float()
    states = _states("bernoulli", 4).float()
    p = m.log_likelihood(states).values.double().exp()
    x = m.sample(20_000, generator=torch.Generator().manual_seed(0), steps=30, start="uniform")
    idx = (x.long() * torch.tensor([8, 4, 2, 1])).sum(1)
    counts = torch.bincount(idx, minlength=16).double()
    expected = p * len(x)
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 37.7, chi2  # 15 degrees of freedom, p = 0.001


def test_unit_types_must_fit_the_data():
    with pytest.raises(DataError, match="binary"):
        RBM(DataInfo("d", (4,), levels=17))
    with pytest.raises(DataError, match="discrete"):
        RBM(BITS, RBMConfig(visible="gaussian"))
    with pytest.raises(ConfigError, match="normalisable"):
        RBM(REALS, RBMConfig(hidden_units="gaussian"))
    with pytest.raises(ConfigError):
        RBMConfig(exact_max_units=30)


@pytest.mark.parametrize("persistent, lr", [(False, 0.2), (True, 0.1)])  # PCD needs the smaller rate
def test_contrastive_divergence_raises_the_exact_likelihood(binary_digits, tmp_path, persistent, lr):
    torch.manual_seed(0)
    m = RBM(binary_digits.info, RBMConfig(hidden=16, k=1, persistent=persistent, chains=256))
    x = binary_digits.test.x
    cfg = TrainConfig(steps=600, batch_size=64, lr=lr, seed=0, progress=False, eval_every=0, log_every=50, ckpt_every=0)
    Trainer(m, binary_digits, cfg, tmp_path, plots=False, quiet=True).fit()
    trained = m.log_likelihood(x).values.mean().item()
    untrained = RBM(binary_digits.info, RBMConfig(hidden=16))
    untrained.initialize(binary_digits.train.x)
    base = untrained.log_likelihood(x).values.mean().item()  # the base-rate model: independent pixels
    assert trained > base + 2, (trained, base)
    if persistent:
        assert m.chains.abs().sum() > 0


@pytest.mark.parametrize(
    "hidden, hidden_units, visible", [(3, "bernoulli", "bernoulli"), (8, "bernoulli", "spin"), (2, "gaussian", "spin")]
)
def test_exact_gradients_match_autograd_through_the_enumerated_log_likelihood(hidden, hidden_units, visible):
    m = _rbm(BITS, scale=0.8, hidden=hidden, hidden_units=hidden_units, visible=visible, seed=5)
    x = _states("bernoulli", 5)[torch.tensor([1, 4, 9, 22, 31])]
    v = m.to_units(x)
    params = [m.W, m.b, m.c]
    states = _states(m.enumerable_layer()[0] == "visible" and visible or hidden_units, m.enumerable_layer()[1])
    energy = m.free_energy if m.enumerable_layer()[0] == "visible" else m.hidden_free_energy
    nll = m.free_energy(v).mean() + torch.logsumexp(-energy(states), 0)
    auto = torch.autograd.grad(nll, params)
    with torch.no_grad():
        h0 = torch.sigmoid(m.hidden_field(v)) if hidden_units == "bernoulli" else m.hidden_field(v)
        exact = m.exact_gradients(v, h0)
    for name, a in zip("Wbc", auto):
        assert torch.allclose(exact[name], a, atol=1e-10), name


def test_exact_gradient_training_needs_an_enumerable_layer():
    with pytest.raises(ConfigError, match="exact_max_units"):
        RBM(DataInfo("bits", (30,), levels=2), RBMConfig(hidden=30, gradient="exact"))
    m = RBM(BITS, RBMConfig(hidden=4, gradient="exact"))
    assert m.enumerable_layer() == ("hidden", 4)
