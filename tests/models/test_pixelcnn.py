"""PixelCNN and Gated PixelCNN: the autoregressive property through gradients (and the blind spot
of the plain PixelCNN, which the same check must find), exact probabilities by enumeration,
sampling frequencies against the exact masses, completion, class conditioning."""

from __future__ import annotations

import itertools

import pytest
import torch

from deepgen.data import DataInfo
from deepgen.errors import ConfigError, DataError
from deepgen.models.autoregressive.pixelcnn import GatedPixelCNN, GatedPixelCNNConfig, PixelCNN, PixelCNNConfig

MODELS = {
    "pixelcnn": (PixelCNN, PixelCNNConfig),
    "gated": (GatedPixelCNN, GatedPixelCNNConfig),
}


def _model(which, shape, levels, num_classes=None, seed=0, scale=2.0, **options):
    cls, cfg = MODELS[which]
    torch.manual_seed(seed)
    model = cls(DataInfo("toy", shape, levels, num_classes=num_classes), cfg(**options)).double()
    with torch.no_grad():  # sharper conditionals than the default init, so errors would show
        for p in model.parameters():
            p.mul_(scale)
    return model.eval()


def _lattice(shape, levels) -> torch.Tensor:
    dim = int(torch.tensor(shape).prod())
    pts = torch.tensor(list(itertools.product(range(levels), repeat=dim)), dtype=torch.float64)
    return (pts / (levels - 1)).view(-1, *shape)


def _raster(shape):
    """Position of every (c, i, j) in the raster order (row, column, channel)."""
    c, h, w = shape
    pos = torch.empty(shape, dtype=torch.long)
    for n, (i, j, ch) in enumerate(itertools.product(range(h), range(w), range(c))):
        pos[ch, i, j] = n
    return pos


def _dependencies(model, x, c, i, j):
    """Which inputs the parameters of position (c, i, j) depend on (gradient nonzero), bool (C, H, W)."""
    x = x.clone().requires_grad_(True)
    out = model.network_params(x, None)
    p = model.likelihood.params_per_dim
    (grad,) = torch.autograd.grad(out[:, c * p : (c + 1) * p, i, j].sum(), x)
    return grad.abs().sum(0) > 0


@pytest.mark.parametrize("which", list(MODELS))
@pytest.mark.parametrize("shape", [(1, 6, 6), (3, 4, 4)])
def test_outputs_depend_only_on_earlier_positions(which, shape):
    model = _model(which, shape, 4, channels=12, layers=2)
    x = torch.rand(3, *shape, dtype=torch.float64)
    pos = _raster(shape)
    seen_earlier = 0
    for ch, i, j in itertools.product(range(shape[0]), range(shape[1]), range(shape[2])):
        dep = _dependencies(model, x, ch, i, j)
        later = pos >= pos[ch, i, j]
        assert not dep[later].any(), f"{which}: output {(ch, i, j)} sees a position at or after it"
        seen_earlier += int(dep[~later].any())
    assert seen_earlier == shape[0] * shape[1] * shape[2] - 1  # every output but the first sees something


def _blind(model, shape):
    """Earlier positions the last pixel's output does not see (the receptive field covers the image)."""
    x = torch.rand(2, *shape, dtype=torch.float64)
    c, h, w = shape
    dep = _dependencies(model, x, 0, h - 1, w // 2)
    earlier = _raster(shape) < _raster(shape)[0, h - 1, w // 2]
    return earlier & ~dep


def test_gated_pixelcnn_has_no_blind_spot_and_the_check_finds_pixelcnns():
    shape = (1, 5, 7)
    plain = _model("pixelcnn", shape, 2, channels=8, layers=4, kernel=3)
    gated = _model("gated", shape, 2, channels=8, layers=4, kernel=3, first_kernel=3)
    blind = _blind(plain, shape)
    # the plain PixelCNN's 3x3 masked kernels miss the pixels up and to the right (the known blind spot)
    rows, cols = torch.nonzero(blind[0], as_tuple=True)
    assert len(rows) > 0 and (rows < shape[1] - 1).all() and (cols > shape[2] // 2).all()
    assert not _blind(gated, shape).any(), "Gated PixelCNN must see every earlier pixel"


@pytest.mark.parametrize("which", list(MODELS))
@pytest.mark.parametrize("shape, levels", [((1, 2, 3), 2), ((2, 2, 2), 2), ((1, 2, 2), 3)])
def test_probabilities_sum_to_one(which, shape, levels):
    model = _model(which, shape, levels, channels=8, layers=1)
    with torch.no_grad():
        lp = model.log_prob(_lattice(shape, levels))
    assert torch.logsumexp(lp, 0).abs() < 1e-10
    assert model.log_likelihood(_lattice(shape, levels)[:2]).kind == "exact"


@pytest.mark.parametrize("likelihood", ["logistic", "logistic-mixture", "categorical"])
def test_other_heads_sum_to_one(likelihood):
    model = _model("gated", (1, 1, 2), 5, channels=8, layers=1, likelihood=likelihood)
    with torch.no_grad():
        assert torch.logsumexp(model.log_prob(_lattice((1, 1, 2), 5)), 0).abs() < 1e-8


@pytest.mark.parametrize("which", list(MODELS))
def test_class_conditional_probabilities_sum_to_one_per_class(which):
    model = _model(which, (1, 2, 2), 2, num_classes=3, channels=8, layers=1, class_conditional=True)
    assert model.conditional
    pts = _lattice((1, 2, 2), 2)
    with torch.no_grad():
        lp = torch.stack([model.log_prob(pts, torch.full((len(pts),), k)) for k in range(3)])
    assert torch.logsumexp(lp, 1).abs().max() < 1e-10
    assert (lp[0] - lp[1]).abs().max() > 1e-3  # the class matters
    with pytest.raises(DataError, match="labels"):
        model.log_prob(pts)


@pytest.mark.parametrize("which", list(MODELS))
@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 1, 2)])
def test_sample_frequencies_match_exact_masses(which, shape):
    model = _model(which, shape, 2, channels=8, layers=1, scale=1.5)
    pts = _lattice(shape, 2)
    with torch.no_grad():
        p = model.log_prob(pts).exp()
    n = 20000
    s = model.sample(n, generator=torch.Generator().manual_seed(0)).double()
    idx = (s.flatten(1) * 2 ** torch.arange(s[0].numel() - 1, -1, -1, dtype=torch.float64)).sum(1).long()
    freq = torch.bincount(idx, minlength=len(pts)).double() / n
    se = (p * (1 - p) / n).sqrt()
    assert ((freq - p).abs() < 5 * se + 1e-3).all(), (freq, p)


@pytest.mark.parametrize("which", list(MODELS))
def test_completion_keeps_observed_pixels_and_matches_greedy_prefix(which):
    shape = (1, 4, 4)
    model = _model(which, shape, 3, channels=8, layers=1)
    x = _lattice((1, 1, 1), 3)[torch.randint(0, 3, (5 * 16,), generator=torch.Generator().manual_seed(1))]
    x = x.view(5, *shape)
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[:, :2] = True  # top half observed
    out = model.complete(x, mask, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:, mask], x[:, mask])
    assert set((out * 2).round().unique().tolist()) <= {0.0, 1.0, 2.0}
    # scattered mask: observed pixels are untouched too
    scattered = torch.rand(5, *shape, generator=torch.Generator().manual_seed(2)) < 0.5
    out = model.complete(x, scattered, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[scattered], x[scattered])
    # greedy completion of an empty prefix is greedy sampling
    nothing = torch.zeros(shape, dtype=torch.bool)
    assert torch.equal(model.complete(x, nothing, temperature=0), model.sample(5, temperature=0).double())


@pytest.mark.parametrize("likelihood", ["logistic", "logistic-mixture", "categorical", "auto"])
def test_temperature_zero_is_deterministic_and_negative_is_refused(likelihood):
    levels = 2 if likelihood == "auto" else 17
    model = _model("gated", (1, 3, 3), levels, channels=8, layers=1, likelihood=likelihood)
    a = model.sample(4, temperature=0, generator=torch.Generator().manual_seed(0))
    b = model.sample(4, temperature=0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    c = model.sample(4, temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert c.shape == a.shape and set((c * (levels - 1)).round().flatten().tolist()) <= set(range(levels))
    with pytest.raises(ConfigError):
        model.sample(2, temperature=-1)


@pytest.mark.parametrize("which", list(MODELS))
def test_class_conditional_sample_frequencies_match_exact_masses(which):
    shape = (1, 1, 3)
    model = _model(which, shape, 2, num_classes=2, channels=8, layers=1, class_conditional=True, scale=1.5)
    pts, n = _lattice(shape, 2), 20000
    weights = 2 ** torch.arange(2, -1, -1, dtype=torch.float64)
    masses = []
    for k in range(2):
        with torch.no_grad():
            p = model.log_prob(pts, torch.full((len(pts),), k)).exp()
        s = model.sample(n, y=torch.full((n,), k), generator=torch.Generator().manual_seed(k)).double()
        freq = torch.bincount((s.flatten(1) * weights).sum(1).long(), minlength=len(pts)).double() / n
        assert ((freq - p).abs() < 5 * (p * (1 - p) / n).sqrt() + 1e-3).all(), (k, freq, p)
        masses.append(p)
    assert (masses[0] - masses[1]).abs().max() > 0.01  # the label changes the distribution


def test_configuration_errors():
    with pytest.raises(ConfigError):
        PixelCNNConfig(kernel=4)
    with pytest.raises(ConfigError):
        GatedPixelCNNConfig(first_kernel=2)
    with pytest.raises(DataError, match="labels"):
        GatedPixelCNN(DataInfo("toy", (1, 4, 4), 2), GatedPixelCNNConfig(class_conditional=True))
    with pytest.raises(DataError, match="images"):
        PixelCNN(DataInfo("toy", (6,), 2))
    with pytest.raises(ConfigError, match="divide"):
        PixelCNN(DataInfo("rgb", (3, 4, 4), 256), PixelCNNConfig(channels=8))
