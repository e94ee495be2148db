"""The ImageGPT-style ``ar-transformer`` (Chen et al. 2020) and its :class:`CausalTransformer`: the
autoregressive property through gradients, exact probabilities by enumeration (unconditional and given
a class), cached decoding equal to full forward passes (logits and seeded samples), completion against
the exact conditional, temperature and errors."""

from __future__ import annotations

import itertools

import pytest
import torch

from deepgen.data import DataInfo
from deepgen.errors import ConfigError, DataError
from deepgen.models.autoregressive.transformer import ARTransformer, ARTransformerConfig
from deepgen.nn import CausalTransformer


def _sharpen(module, seed, std):
    """Redraw the weights with a larger scale than GPT-2's 0.02, so that conditionals are far from
    uniform and an error in a probability or a mask would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)
    return module


def _model(shape, levels, num_classes=None, seed=0, std=0.5, **options) -> ARTransformer:
    options = {"d_model": 16, "n_layers": 2, "n_heads": 2, **options}
    info = DataInfo("toy", shape, levels, num_classes=num_classes)
    model = ARTransformer(info, ARTransformerConfig(class_conditional=num_classes is not None, **options))
    return _sharpen(model.double(), seed, std).eval()


def _net(vocab=3, seq_len=7, num_classes=None, layers=2, seed=0) -> CausalTransformer:
    net = CausalTransformer(vocab, seq_len, d_model=16, n_layers=layers, n_heads=4, num_classes=num_classes)
    return _sharpen(net.double(), seed, 0.4).eval()


def _lattice(dim, levels) -> torch.Tensor:
    """Every point of {0, 1/(L-1), ..., 1}^D, (L^D, D) float64."""
    pts = torch.tensor(list(itertools.product(range(levels), repeat=dim)), dtype=torch.float64)
    return pts / (levels - 1)


@pytest.mark.parametrize("num_classes", [None, 3])
def test_logits_depend_only_on_earlier_tokens(num_classes):
    """d logits[:, t] / d (embedding of token s) is exactly zero for s >= t and nonzero for s < t."""
    net, t_len = _net(vocab=4, seq_len=6, num_classes=num_classes), 6
    tokens = torch.randint(0, 4, (3, t_len), generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 2, 1]) if num_classes else None
    h = net.embed(tokens, y).detach().requires_grad_()  # input position s + 1 holds token s
    logits = net.decode(h)
    for t in range(t_len):
        (grad,) = torch.autograd.grad(logits[:, t].sum(), h, retain_graph=True)
        per_token = grad[:, 1:].abs().sum((0, 2))  # (T - 1,): token s = 0 .. T-2
        assert (per_token[t:] == 0).all(), f"logits {t} see tokens at or after {t}"
        assert (per_token[:t] > 0).all(), f"logits {t} ignore an earlier token"
        assert grad[:, 0].abs().sum() > 0  # the start (class) embedding reaches every position
    changed = tokens.clone()
    changed[:, 3:] = (changed[:, 3:] + 1) % 4  # changing tokens 3.. leaves logits 0..3 unchanged
    assert torch.equal(net(changed, y)[:, :4], net(tokens, y)[:, :4])


@pytest.mark.parametrize("levels, dim", [(2, 6), (3, 4)])
def test_probabilities_sum_to_one(levels, dim):
    model = _model((dim,), levels)
    with torch.no_grad():
        lp = model.log_prob(_lattice(dim, levels))
    assert lp.shape == (levels**dim,) and torch.logsumexp(lp, 0).abs() < 1e-10
    assert lp.exp().max() > 3 / levels**dim  # far from uniform: the check is not vacuous
    assert model.log_likelihood(_lattice(dim, levels)[:3]).kind == "exact"


def test_class_conditional_probabilities_sum_to_one_per_class():
    model = _model((6,), 2, num_classes=3)
    assert model.conditional and not ARTransformer.conditional
    x = _lattice(6, 2)
    with torch.no_grad():
        lps = [model.log_prob(x, torch.full((64,), c)) for c in range(3)]
    for lp in lps:
        assert torch.logsumexp(lp, 0).abs() < 1e-10
    assert not torch.allclose(lps[0], lps[1])  # the class changes the distribution
    first = [model.logits(x[:1], torch.tensor([c]))[0, 0] for c in (0, 1)]  # logits of pixel 0 per class
    assert not torch.allclose(*first)
    with pytest.raises(DataError, match="labels"):
        model.log_prob(x)  # a density given y needs y
    ll = model.log_likelihood(x[:4], y=torch.tensor([0, 1, 2, 0]))
    assert ll.kind == "exact" and torch.allclose(ll.values, model.log_prob(x[:4], torch.tensor([0, 1, 2, 0])))


@pytest.mark.parametrize("num_classes", [None, 2])
def test_cached_logits_equal_full_forward_logits(num_classes):
    net = _net(vocab=5, seq_len=9, num_classes=num_classes).float()
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 5, (4, 9), generator=g)
    y = torch.tensor([0, 1, 1, 0]) if num_classes else None
    with torch.no_grad():
        full = net(tokens, y)
        cache = net.init_cache(4)
        steps = [net.step(tokens[:, i - 1] if i else None, cache, y) for i in range(9)]
        assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5)
        # a prefix in one pass, then steps; a chunk after cached positions (the masked branch)
        cache = net.init_cache(4)
        head = net(tokens[:, :4], y, cache=cache)
        rest = [net.step(tokens[:, i - 1], cache) for i in range(4, 9)]
        assert torch.allclose(torch.cat([head, torch.stack(rest, 1)], 1), full, atol=1e-5)
        cache = net.init_cache(4)
        net(tokens[:, :3], y, cache=cache)
        h = net.token_embedding(tokens[:, 2:8]) + net.position_embedding[3:9]
        assert torch.allclose(net.decode(h, cache), full[:, 3:9], atol=1e-5) and cache.length == 9
    with pytest.raises(ValueError, match="all 9 positions"):
        net.step(tokens[:, 0], cache)


@pytest.mark.parametrize("num_classes", [None, 3])
def test_cached_and_uncached_sampling_draw_identical_samples(num_classes):
    model = _model((1, 4, 4), 5, num_classes=num_classes)
    y = torch.tensor([0, 1, 2, 2, 1, 0]) if num_classes else None
    for t in (1.0, 0.7):
        a = model.sample(6, generator=torch.Generator().manual_seed(3), y=y, temperature=t)
        b = model.sample(6, generator=torch.Generator().manual_seed(3), y=y, temperature=t, cache=False)
        assert torch.equal(a, b)
    x = model.sample(6, generator=torch.Generator().manual_seed(4), y=y)
    mask = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(5)) < 0.4
    mask[:, :, 0, :2] = True  # a kept prefix, which the cached decoder takes in one pass
    a = model.complete(x, mask, generator=torch.Generator().manual_seed(6), y=y)
    b = model.complete(x, mask, generator=torch.Generator().manual_seed(6), y=y, cache=False)
    assert torch.equal(a, b)


def test_seeded_sampling_and_temperature_zero_is_greedy_decoding():
    model = _model((1, 3, 3), 4)

    def draw(seed, **options):
        return model.sample(5, generator=torch.Generator().manual_seed(seed), **options)

    assert torch.equal(draw(0), draw(0)) and not torch.equal(draw(0), draw(1))
    greedy = draw(0, temperature=0)
    assert torch.equal(greedy, draw(1, temperature=0)) and (greedy == greedy[:1]).all()
    k = torch.zeros(1, 9, dtype=torch.long)  # greedy decoding by hand: argmax of full forward passes
    for i in range(9):
        k[0, i] = model.net(k[:, : i + 1])[0, i].argmax()
    assert torch.equal(model.tokens(greedy[:1]), k)
    s = draw(2, temperature=0.3)
    assert torch.equal(s * 3, (s * 3).round()) and s.min() >= 0 and s.max() <= 1


def _exact_conditional(model, x, observed, y=None):
    """{tuple of unobserved values: p(x_u | x_o)} by enumerating the model's probabilities."""
    free = (~observed).nonzero()[:, 0]
    cands = x.repeat(2 ** len(free), 1)
    cands[:, free] = _lattice(len(free), 2)
    with torch.no_grad():
        p = torch.softmax(model.log_prob(cands, None if y is None else y.expand(len(cands))), 0)
    return {tuple(c[free].tolist()): q.item() for c, q in zip(cands, p)}


@pytest.mark.parametrize("num_classes", [None, 2])
def test_prefix_completion_samples_the_exact_conditional(num_classes):
    model = _model((5,), 2, num_classes=num_classes, std=0.6)
    y = torch.tensor(1) if num_classes else None
    x = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    observed = torch.tensor([True, True, False, False, False])  # a prefix of the raster order
    exact = _exact_conditional(model, x[0], observed, y)
    n = 4000
    out = model.complete(x.repeat(n, 1), observed, generator=torch.Generator().manual_seed(0), y=y)
    assert (out[:, observed] == x[:, observed]).all()
    for values, p in exact.items():
        freq = (out[:, ~observed] == torch.tensor(values, dtype=out.dtype)).all(1).double().mean().item()
        assert abs(freq - p) < 4 * (p * (1 - p) / n) ** 0.5 + 2e-3, (values, freq, p)


def test_completion_never_changes_observed_values():
    model = _model((1, 5, 5), 17, n_layers=1)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 17, (8, 1, 5, 5), generator=g).double() / 16
    mask = torch.rand(8, 1, 5, 5, generator=g) < 0.5  # not a prefix
    for options in ({}, {"cache": False}, {"temperature": 0.5}, {"temperature": 0}):
        out = model.complete(x, mask, generator=g, **options)
        assert out.shape == x.shape and torch.equal(out[mask], x[mask])
        k = out * 16
        assert torch.equal(k, k.round()) and out.min() >= 0 and out.max() <= 1
    assert torch.equal(model.complete(x, torch.ones_like(mask)), x)
    greedy = model.complete(x, mask, temperature=0)
    assert torch.equal(greedy, model.complete(x, mask, temperature=0, cache=False))
    assert model.supports("complete")


def test_generate_is_a_prior_over_codes():
    """The network alone, as a VQ-VAE prior would use it: generate codes, score them, fill a suffix."""
    net = _net(vocab=6, seq_len=8, num_classes=2)
    y = torch.tensor([0, 1, 1])
    codes = net.generate(3, y=y, generator=torch.Generator().manual_seed(0))
    assert codes.shape == (3, 8) and codes.dtype == torch.long and 0 <= codes.min() and codes.max() < 6
    assert torch.isfinite(net.log_prob(codes, y)).all()
    free = torch.zeros(3, 8, dtype=torch.bool)
    free[:, 5:] = True
    filled = net.fill(codes, free, y=y, generator=torch.Generator().manual_seed(1))
    assert torch.equal(filled[:, :5], codes[:, :5])
    with pytest.raises(ValueError, match="labels"):
        net.generate(2)


def test_errors_say_so():
    with pytest.raises(DataError, match="continuous"):
        ARTransformer(DataInfo("toy", (4,), None))
    with pytest.raises(DataError, match="labels"):
        ARTransformer(DataInfo("toy", (4,), 2), ARTransformerConfig(class_conditional=True))
    with pytest.raises(ConfigError, match="temperature"):
        ARTransformer.sample_options(temperature=-1)
    with pytest.raises(ConfigError, match="divide"):
        ARTransformerConfig(d_model=10, n_heads=4)
    with pytest.raises(ConfigError, match="d_model"):
        ARTransformerConfig(d_model=0)
    model = ARTransformer(DataInfo("toy", (4,), 2), ARTransformerConfig(d_model=8, n_layers=1, n_heads=2))
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(2, temperature=-0.5)
    with pytest.raises(ConfigError, match="unconditional"):
        model.sample(2, y=torch.tensor([0, 1]))
    with pytest.raises(DataError, match="shape"):
        model.log_prob(torch.zeros(2, 5))
