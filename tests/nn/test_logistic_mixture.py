"""Discretised logistic mixture (PixelCNN++): masses sum to 1, K = 1 is the single logistic, the
log-mass matches a brute-force float64 mixture, samples follow the masses, and the head plugs into
likelihood_head."""

from __future__ import annotations

import pytest
import torch

from deepgen.data import DataInfo
from deepgen.distributions import (
    discretized_logistic_log_prob,
    discretized_logistic_mixture_log_prob,
    discretized_logistic_mixture_sample,
)
from deepgen.errors import ConfigError, DataError
from deepgen.nn import LogisticMixtureHead, likelihood_head
from deepgen.nn.heads import HEADS


def _params(p, k, g, dtype=torch.float64):
    """P parameter sets of K components, (P, K) each, with extreme means, scales and weights mixed in."""
    w = 3 * torch.randn(p, k, generator=g, dtype=dtype)
    m = 0.5 + torch.randn(p, k, generator=g, dtype=dtype)
    s = -8 + 11 * torch.rand(p, k, generator=g, dtype=dtype)  # the head's range [-8, 3]
    m[:8, 0] = torch.tensor([-100.0, -1.0, 0.0, 0.5, 1.0, 2.0, 100.0, 1e-3], dtype=dtype)
    s[:8, 0] = torch.tensor([-8.0, -8.0, -8.0, 3.0, -8.0, 3.0, 3.0, -8.0], dtype=dtype)
    w[:4, 0] = torch.tensor([30.0, -30.0, 0.0, 30.0], dtype=dtype)  # one component all but certain / absent
    return w, m, s


def _all_levels(w, m, s, levels):
    """log P(x = j) for every parameter set and level, (P, L), shape (1,) per example."""
    p, _ = w.shape
    x = (torch.arange(levels, dtype=w.dtype) / (levels - 1)).repeat(p).unsqueeze(1)  # (P * L, 1)
    rep = [t.repeat_interleave(levels, 0).unsqueeze(-1) for t in (w, m, s)]  # (P * L, K, 1)
    return discretized_logistic_mixture_log_prob(*rep, x, levels).view(p, levels)


def _brute_force(w, m, s, x, levels):
    """log of sum_k softmax(w)_k (F(upper edge) - F(lower edge)), with probabilities in float64; (B,)."""
    w, m, s, x = (t.double() for t in (w, m, s, x))
    half = 0.5 / (levels - 1)
    x = x.unsqueeze(1)
    k = torch.round(x * (levels - 1))
    upper = torch.where(k >= levels - 1, torch.ones_like(x), torch.sigmoid((x + half - m) / torch.exp(s)))
    lower = torch.where(k <= 0, torch.zeros_like(x), torch.sigmoid((x - half - m) / torch.exp(s)))
    probs = (torch.softmax(w, 1) * (upper - lower)).sum(1)
    return torch.log(probs).flatten(1).sum(1)


@pytest.mark.parametrize("levels", [2, 17, 256])
@pytest.mark.parametrize("k", [1, 3])
def test_masses_sum_to_one_over_all_levels(levels, k):
    g = torch.Generator().manual_seed(levels + k)
    w, m, s = _params(40, k, g)
    # Each bin's mass is computed in logs as sigmoid(a) sigmoid(-b) (1 - e^(b - a)), with no
    # density-times-width fallback in the tails (PixelCNN++'s code has one, off by up to ~1e-5 per
    # side), so the masses sum to 1 to rounding even at extreme parameters.
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):  # float32, as a network would run it
        lp = _all_levels(w.to(dtype), m.to(dtype), s.to(dtype), levels)
        assert torch.isfinite(lp).all() and (lp <= 1e-6).all()
        total = torch.exp(lp.double()).sum(1)
        assert torch.allclose(total, torch.ones(40, dtype=torch.float64), atol=tol, rtol=0), (total - 1).abs().max()


def test_one_component_equals_the_single_discretised_logistic_exactly():
    g = torch.Generator().manual_seed(1)
    for levels in (2, 17, 256):
        shape = (6, 1, 2, 3, 3)
        w = 5 * torch.randn(shape, generator=g)  # any weight: one component has all the mass
        m = 0.5 + 2 * torch.randn(shape, generator=g)
        s = -8 + 11 * torch.rand(shape, generator=g)
        x = torch.randint(0, levels, (6, 2, 3, 3), generator=g).float() / (levels - 1)
        single = discretized_logistic_log_prob(m[:, 0], s[:, 0], x, levels)
        assert torch.equal(discretized_logistic_mixture_log_prob(w, m, s, x, levels), single)
    info = DataInfo("digits", (1, 8, 8), 17)
    params = 2 * torch.randn(4, 3, 8, 8, generator=g)
    x = torch.randint(0, 17, (4, 1, 8, 8), generator=g).float() / 16
    mix, single = likelihood_head(info, "logistic-mixture", components=1), likelihood_head(info, "logistic")
    assert torch.equal(mix.log_prob(params, x), single.log_prob(params[:, 1:], x))
    assert torch.equal(mix.mean(params), single.mean(params[:, 1:]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_prob_matches_a_brute_force_mixture(dtype):
    g = torch.Generator().manual_seed(2)
    levels, k, b, shape = 9, 4, 5, (2, 3)
    w = (2 * torch.randn(b, k, *shape, generator=g)).to(dtype)
    m = (0.5 + 0.5 * torch.randn(b, k, *shape, generator=g)).clamp(-0.5, 1.5).to(dtype)
    s = (-1.5 + 2 * torch.rand(b, k, *shape, generator=g)).to(dtype)  # every bin's mass above 1e-5
    x = (torch.randint(0, levels, (b, *shape), generator=g).float() / (levels - 1)).to(dtype)
    x[0] = 0.0  # both edge bins appear
    x[1] = 1.0
    lp = discretized_logistic_mixture_log_prob(w, m, s, x, levels)
    assert lp.shape == (b,) and lp.dtype == dtype
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    assert torch.allclose(lp.double(), _brute_force(w, m, s, x, levels), atol=tol, rtol=0)
    # a batch of 1 broadcasts over x (an unconditional baseline)
    lp1 = discretized_logistic_mixture_log_prob(w[:1], m[:1], s[:1], x, levels)
    assert torch.allclose(
        lp1.double(),
        _brute_force(w[:1].expand_as(w), m[:1].expand_as(m), s[:1].expand_as(s), x, levels),
        atol=tol,
        rtol=0,
    )


def test_gradients_are_finite_at_extreme_parameters():
    g = torch.Generator().manual_seed(3)
    w, m, s = (t.float().unsqueeze(-1).requires_grad_() for t in _params(40, 3, g, torch.float32))
    x = torch.randint(0, 256, (40, 1), generator=g).float() / 255
    discretized_logistic_mixture_log_prob(w, m, s, x, 256).sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (w, m, s))


def test_sample_frequencies_match_the_masses():
    levels, n = 5, 200_000
    # dimension 0: three well-separated sharp components on levels 0, 2, 4 (frequencies = weights);
    # dimension 1: three overlapping components
    w = torch.tensor([[[0.0, -1.0], [1.0, 0.5], [-0.5, 0.0]]])  # (1, K=3, D=2)
    m = torch.tensor([[[0.0, 0.3], [0.5, 0.6], [1.0, 0.1]]])
    s = torch.tensor([[[-6.0, -1.5], [-6.0, -2.0], [-6.0, -1.0]]])
    g = torch.Generator().manual_seed(4)
    x = discretized_logistic_mixture_sample(*(t.expand(n, 3, 2) for t in (w, m, s)), levels, g)
    assert x.shape == (n, 2)
    k = torch.round(x * (levels - 1)).long()
    assert torch.equal(k.float(), x * (levels - 1)) and k.min() >= 0 and k.max() < levels
    freq = torch.stack([torch.bincount(k[:, d], minlength=levels).double() / n for d in range(2)], 1)  # (L, D)
    per_dim = [_all_levels(*(t[:, :, d].double() for t in (w, m, s)), levels) for d in range(2)]  # (1, L) each
    probs = torch.exp(torch.cat(per_dim)).T  # (L, D)
    assert torch.allclose(probs.sum(0), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(probs[[0, 2, 4], 0], torch.softmax(w[0, :, 0].double(), 0), atol=1e-6)
    sd = torch.sqrt(probs * (1 - probs) / n)
    assert ((freq - probs).abs() <= 5 * sd + 1e-4).all(), (freq, probs)
    chi2 = (n * (freq - probs) ** 2 / probs.clamp_min(1e-12)).sum(0)  # 4 degrees of freedom per dimension
    assert (chi2 < 25.0).all(), chi2  # P(chi2_4 > 25) < 1e-4


def test_sampling_is_reproducible_with_a_seeded_generator():
    g = torch.Generator().manual_seed(5)
    w, m, s = (torch.randn(8, 4, 1, 6, 6, generator=g) for _ in range(3))
    draw = [discretized_logistic_mixture_sample(w, m, s, 17, torch.Generator().manual_seed(seed)) for seed in (7, 7, 8)]
    assert torch.equal(draw[0], draw[1]) and not torch.equal(draw[0], draw[2])
    head = likelihood_head(DataInfo("digits", (1, 6, 6), 17), "logistic-mixture", components=4)
    params = torch.randn(1, 12, 6, 6, generator=g)
    a = head.sample(params, torch.Generator().manual_seed(9), n=10)
    b = head.sample(params, torch.Generator().manual_seed(9), n=10)
    assert a.shape == (10, 1, 6, 6) and torch.equal(a, b)


def test_head_through_likelihood_head_on_digits():
    assert "logistic-mixture" in HEADS
    info = DataInfo("digits", (1, 8, 8), 17)
    head = likelihood_head(info, "logistic-mixture")
    assert isinstance(head, LogisticMixtureHead)
    assert head.kind == "logistic-mixture" and head.params_per_dim == 15 and head.components == 5
    assert head.is_mass and not head.is_bound
    assert likelihood_head(info, "logistic-mixture", components=2).params_per_dim == 6
    g = torch.Generator().manual_seed(6)
    params = (3 * torch.randn(4, 15 * 64, generator=g)).requires_grad_()  # flat (B, P * D) also accepted
    x = torch.randint(0, 17, (4, 1, 8, 8), generator=g).float() / 16
    lp = head.log_prob(params, x)
    assert lp.shape == (4,) and torch.isfinite(lp).all() and (lp <= 0).all()
    lp.sum().backward()
    assert torch.isfinite(params.grad).all()
    params = params.detach().view(4, 15, 8, 8)
    s, m = head.sample(params, g), head.mean(params)
    s1 = head.sample(params[:1], g, n=10)
    assert s.shape == m.shape == (4, 1, 8, 8) and s1.shape == (10, 1, 8, 8)
    for t in (s, s1):
        assert torch.equal(t * 16, (t * 16).round()) and t.min() >= 0 and t.max() <= 1
    assert m.min() >= 0 and m.max() <= 1
    # a batch of 1 broadcasts over the data
    assert torch.allclose(head.log_prob(params[:1], x), head.log_prob(params[:1].expand(4, -1, -1, -1), x))
    # the log-scale is clamped to [-8, 3] like the single logistic
    wild = params.clone()
    wild[:, 10:] = torch.where(wild[:, 10:] > 0, 50.0, -50.0)
    clamped = wild.clone()
    clamped[:, 10:] = clamped[:, 10:].clamp(-8, 3)
    assert torch.equal(head.log_prob(wild, x), head.log_prob(clamped, x))


def test_head_mean_equals_the_enumerated_expectation():
    levels = 6
    head = likelihood_head(DataInfo("t", (1,), levels), "logistic-mixture", components=3)
    params = torch.randn(3, 9, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    values = torch.arange(levels, dtype=torch.float64) / (levels - 1)
    probs = torch.stack([torch.exp(head.log_prob(params, v.expand(3, 1))) for v in values], 1)  # (3, L)
    assert torch.allclose(probs.sum(1), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(head.mean(params)[:, 0], (probs * values).sum(1))


def test_wrong_data_or_components_fail_in_one_line():
    for info in (DataInfo("moons", (2,)), DataInfo("digits", (1, 8, 8), None)):
        with pytest.raises(DataError, match="logistic-mixture likelihood needs discrete data.*continuous") as e:
            likelihood_head(info, "logistic-mixture", model="vae")
        assert "\n" not in str(e.value) and str(e.value).startswith("vae:")
    for bad in (0, -1, 2.5):
        with pytest.raises(ConfigError, match="components >= 1") as e:
            likelihood_head(DataInfo("digits", (1, 8, 8), 17), "logistic-mixture", model="vae", components=bad)
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="components >= 1"):
        LogisticMixtureHead(DataInfo("digits", (1, 8, 8), 17), components=0)
