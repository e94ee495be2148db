"""MADE (Germain et al. 2015, arXiv:1502.03509): the autoregressive property through gradients, exact
probabilities by enumeration (single masks and ensembles), completion against the exact conditional,
seeded sampling, and masks that live in buffers."""

from __future__ import annotations

import itertools

import pytest
import torch

from deepgen.data import DataInfo
from deepgen.errors import ConfigError
from deepgen.models.autoregressive.made import MADE, MADEConfig, MADENetwork


def _model(shape, levels, seed=0, scale=3.0, **options) -> MADE:
    torch.manual_seed(seed)
    model = MADE(DataInfo("toy", shape, levels), MADEConfig(**options)).double()
    with torch.no_grad():  # sharper conditionals than the default init, so errors would show
        for p in model.parameters():
            p.mul_(scale)
    return model.eval()


def _lattice(dim, levels) -> torch.Tensor:
    """Every point of {0, 1/(L-1), ..., 1}^D, (L^D, D) float64."""
    pts = torch.tensor(list(itertools.product(range(levels), repeat=dim)), dtype=torch.float64)
    return pts / (levels - 1)


@pytest.mark.parametrize(
    "order, resample_order, direct",
    [("natural", False, False), ("random", False, False), ("random", True, False), ("random", True, True)],
)
def test_outputs_depend_only_on_earlier_inputs(order, resample_order, direct):
    d, p = 7, 3
    torch.manual_seed(0)
    net = MADENetwork(
        d, p, (24, 24), order=order, num_masks=3, resample_order=resample_order, direct=direct, seed=1
    ).double()
    x = torch.randn(4, d, dtype=torch.float64, requires_grad=True)
    connected = 0
    for k in range(3):
        net.use_mask(k)
        pos = torch.empty(d, dtype=torch.long)
        pos[net.order(k)] = torch.arange(d)
        for i in range(d):
            for j in range(p):
                (grad,) = torch.autograd.grad(net(x)[:, i, j].sum(), x)
                later = pos >= pos[i]
                assert (grad[:, later] == 0).all(), f"mask {k}: output {i} sees inputs at or after it"
                connected += int(grad[:, ~later].abs().sum() > 0)
    assert connected > 0.5 * 3 * (d - 1) * p  # most outputs do see earlier inputs (a non-trivial mask)
    if order == "natural" and not resample_order:
        assert torch.equal(net.order(0), torch.arange(d))


def test_random_orderings_differ_between_masks_only_when_resampled():
    a = MADENetwork(6, 1, (8,), order="random", num_masks=3, seed=0)
    b = MADENetwork(6, 1, (8,), order="random", num_masks=3, resample_order=True, seed=0)
    assert all(torch.equal(a.order(0), a.order(k)) for k in range(3))
    assert not all(torch.equal(b.order(0), b.order(k)) for k in range(3))
    assert not torch.equal(a.order(0), torch.arange(6))


@pytest.mark.parametrize(
    "options",
    [
        {"hidden": (16,)},
        {"hidden": (16, 12), "order": "random"},
        {"hidden": ()},
        {"hidden": (16,), "order": "random", "num_masks": 4, "ensemble": 4, "resample_order": True},
    ],
)
def test_binary_probabilities_sum_to_one(options):
    model = _model((6,), 2, **options)
    with torch.no_grad():
        lp = model.log_prob(_lattice(6, 2))
    assert lp.shape == (64,) and torch.logsumexp(lp, 0).abs() < 1e-10
    assert model.log_likelihood(_lattice(6, 2)[:3]).kind == "exact"


@pytest.mark.parametrize("ensemble", [1, 3])
def test_categorical_probabilities_sum_to_one(ensemble):
    model = _model((3,), 4, hidden=(10,), order="random", num_masks=3, ensemble=ensemble)
    assert model.likelihood.kind == "categorical" and model.net.params_per_dim == 4
    with torch.no_grad():
        lp = model.log_prob(_lattice(3, 4))
    assert lp.shape == (64,) and torch.logsumexp(lp, 0).abs() < 1e-10


def test_ensemble_is_the_mean_of_the_masks_probabilities():
    model = _model((5,), 2, hidden=(12,), num_masks=3, ensemble=3)
    x = _lattice(5, 2)[:9]
    with torch.no_grad():
        single = torch.stack([model.log_prob_mask(x, k) for k in range(3)], 1)
        assert torch.allclose(model.log_prob(x).exp(), single.exp().mean(1))
        assert not torch.allclose(single[:, 0], single[:, 1])  # the masks are different models


def test_gaussian_output_is_a_normalised_density():
    model = _model((2,), None, scale=0.5, hidden=(16,))
    g = torch.linspace(-12, 12, 301, dtype=torch.float64)
    grid = torch.cartesian_prod(g, g)
    with torch.no_grad():
        mass = model.log_prob(grid).exp().sum() * (g[1] - g[0]) ** 2
    assert abs(mass.item() - 1) < 1e-3


def _exact_conditional(model, x, observed):
    """{tuple of unobserved values: p(x_u | x_o)} by enumerating the model's probabilities."""
    free = (~observed).nonzero()[:, 0]
    cands = x.repeat(2 ** len(free), 1)
    cands[:, free] = _lattice(len(free), 2)
    with torch.no_grad():
        p = torch.softmax(model.log_prob(cands), 0)
    return {tuple(c[free].tolist()): q.item() for c, q in zip(cands, p)}


@pytest.mark.parametrize("ensemble", [1, 3])
def test_prefix_completion_samples_the_exact_conditional(ensemble):
    model = _model((5,), 2, hidden=(16,), num_masks=3, ensemble=ensemble)
    x = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    observed = torch.tensor([True, True, False, False, False])  # a prefix of the natural order
    exact = _exact_conditional(model, x[0], observed)
    n = 6000
    out = model.complete(x.repeat(n, 1), observed, generator=torch.Generator().manual_seed(0))
    assert (out[:, observed] == x[:, observed]).all()
    for values, p in exact.items():
        freq = (out[:, ~observed] == torch.tensor(values, dtype=out.dtype)).all(1).double().mean().item()
        assert abs(freq - p) < 4 * (p * (1 - p) / n) ** 0.5 + 2e-3, (values, freq, p)


def test_completion_never_changes_observed_values():
    model = _model((1, 6, 6), 17, hidden=(20,), order="random", num_masks=2, ensemble=2, resample_order=True)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 17, (8, 1, 6, 6), generator=g).double() / 16
    mask = torch.rand(8, 1, 6, 6, generator=g) < 0.5  # not a prefix of any ordering
    for options in ({}, {"mask_index": 1}, {"temperature": 0.5}):
        out = model.complete(x, mask, generator=g, **options)
        assert out.shape == x.shape and torch.equal(out[mask], x[mask])
        k = out * 16
        assert torch.equal(k, k.round()) and out.min() >= 0 and out.max() <= 1
    assert torch.equal(model.complete(x, torch.ones_like(mask)), x)
    assert model.supports("complete")


def test_seeded_sampling_is_reproducible_and_temperature_zero_is_greedy():
    model = _model((1, 4, 4), 17, hidden=(16,), num_masks=3, ensemble=3)

    def draw(seed, **options):
        return model.sample(6, generator=torch.Generator().manual_seed(seed), **options)

    assert torch.equal(draw(0), draw(0)) and not torch.equal(draw(0), draw(1))
    assert torch.equal(draw(0, temperature=0, mask_index=2), draw(1, temperature=0, mask_index=2))
    with pytest.raises(ConfigError):
        draw(0, mask_index=3)
    with pytest.raises(ConfigError):
        draw(0, temperature=-1)


def test_masks_are_buffers_and_forward_leaves_the_weights_alone():
    model = _model((6,), 2, hidden=(16,), num_masks=4, ensemble=2)
    buffers = dict(model.named_buffers())
    assert {"net.hidden.0.mask", "net.output.mask", "net.degrees0", "net.degrees1"} <= set(buffers)
    assert not any("mask" in n or "degrees" in n for n, _ in model.named_parameters())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = _lattice(6, 2)[:10]
    model.train()
    for _ in range(6):  # training-mode losses switch masks
        model.loss(x)["loss"].backward()
    model.log_prob(x).sum().backward()  # an ensemble in one graph: earlier masks are not overwritten
    model.sample(3)
    model.complete(x, torch.rand(10, 6) < 0.5)
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    masked = model.net.output.mask == 0
    assert masked.any() and (model.net.output.weight[masked] != 0).all()  # never zeroed in place
    single = _model((6,), 2, hidden=(16,))
    single.loss(x)["loss"].backward()
    assert (single.net.output.weight.grad[single.net.output.mask == 0] == 0).all()


def test_conditioner_shapes_and_masks_from_a_seed():
    model = _model((1, 3, 3), 17, hidden=(8,), num_masks=2)
    assert model.conditioner(torch.zeros(4, 1, 3, 3, dtype=torch.float64)).shape == (4, 9, 17)
    net = MADENetwork(9, 2, (8,), num_masks=2, seed=5)
    assert net(torch.zeros(4, 9)).shape == (4, 9, 2)
    again = MADENetwork(9, 2, (8,), num_masks=2, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(net.buffers(), again.buffers()))


def test_bad_options_say_so():
    with pytest.raises(ConfigError, match="ensemble"):
        MADEConfig(num_masks=2, ensemble=3)
    with pytest.raises(ConfigError, match="resample_order"):
        MADENetwork(4, 1, (8,), resample_order=True)
    with pytest.raises(Exception, match="continuous"):
        MADE(DataInfo("toy", (4,), 17), MADEConfig(likelihood="gaussian"))
