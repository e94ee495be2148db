"""The Flow model base with tiny concrete flows: normalisation, sampling, temperature, training, labels."""

from __future__ import annotations

import math

import pytest
import torch

from deepgen.bijectors import Affine, Compose, ConditionalAffine, Identity, Logit, Reverse
from deepgen.data.base import DataInfo
from deepgen.data.transforms import dequantize
from deepgen.errors import ConfigError, DataError
from deepgen.models.base import DensityKind
from deepgen.models.flows import Flow, FlowSampleOptions

TOY = DataInfo("toy", (2,))
DIGITS_LIKE = DataInfo("digits-like", (1, 4, 4), levels=17)


def _affine(shape, g):
    return Affine(shape, loc=torch.randn(shape, generator=g) * 0.5, log_scale=torch.randn(shape, generator=g) * 0.3)


class TinyFlow(Flow):
    """preprocess -> affine -> reverse -> affine, with seeded random parameters."""

    def build_bijector(self):
        g = torch.Generator().manual_seed(0)
        shape = self.info.shape
        return Compose(self.preprocess(self.info), _affine(shape, g), Reverse(), _affine(shape, g))


class CondFlow(Flow):
    conditional = True

    def build_bijector(self):
        return Compose(Affine(2), ConditionalAffine(self.info.num_classes, 2))


def _flow_of(build, info=TOY):
    return type("Built", (Flow,), {"build_bijector": lambda self: build()})(info)


def _midpoints(lo, hi, n):
    step = (hi - lo) / n
    return lo + step * (torch.arange(n, dtype=torch.float64) + 0.5), step


@pytest.mark.parametrize(
    "build, lo, hi",
    [
        (None, -15.0, 15.0),  # TinyFlow: a Gaussian, on a wide grid
        (lambda: Compose(Logit(0.0), _affine(2, torch.Generator().manual_seed(1))), 0.0, 1.0),  # logit-normal
        # Logit(alpha) maps (-a/(1-2a), (1-a)/(1-2a)) onto R: the density lives on that wider interval
        (lambda: Compose(Logit(0.1), _affine(2, torch.Generator().manual_seed(2))), -0.125, 1.125),
    ],
    ids=["gaussian", "logit-normal", "logit-alpha"],
)
def test_density_integrates_to_one(build, lo, hi):
    model = (TinyFlow(TOY) if build is None else _flow_of(build)).double()
    t, step = _midpoints(lo, hi, 600)
    grid = torch.cartesian_prod(t, t)
    with torch.no_grad():
        mass = torch.exp(model.log_prob(grid)).sum().item() * step * step
    assert abs(mass - 1) < 1e-2, mass


def test_logit_alpha_leaves_mass_outside_the_unit_square():
    model = _flow_of(lambda: Compose(Logit(0.1), _affine(2, torch.Generator().manual_seed(2)))).double()
    t, step = _midpoints(0.0, 1.0, 400)
    with torch.no_grad():
        mass = torch.exp(model.log_prob(torch.cartesian_prod(t, t))).sum().item() * step * step
    assert 0.5 < mass < 0.99  # documented in Logit: reported likelihoods err low


def test_seeded_sampling_is_reproducible_and_works_without_grad():
    model = TinyFlow(TOY)
    a = model.sample(64, generator=torch.Generator().manual_seed(3))
    b = model.sample(64, generator=torch.Generator().manual_seed(3))
    c = model.sample(64, generator=torch.Generator().manual_seed(4))
    assert a.shape == (64, 2) and torch.equal(a, b) and not torch.equal(a, c)
    with torch.no_grad():
        s = model.sample(8, generator=torch.Generator().manual_seed(3))
    assert not s.requires_grad and torch.equal(s, a[:8])


def test_temperature_zero_gives_the_mode_and_options_are_checked():
    model = TinyFlow(TOY).double()
    mode = model.sample(3, temperature=0.0)
    assert torch.allclose(mode, mode[:1].expand(3, 2))
    x = mode[:1].clone().requires_grad_()
    (grad,) = torch.autograd.grad(model.log_prob(x).sum(), x)
    assert grad.abs().max() < 1e-8  # an affine flow's density peaks at inverse(0)
    g = torch.Generator().manual_seed(0)
    cold = model.sample(4000, generator=g, temperature="0.5")  # strings parse, as from the CLI
    hot = model.sample(4000, generator=torch.Generator().manual_seed(0))
    assert torch.allclose((cold - mode[0]).std(0), 0.5 * (hot - mode[0]).std(0), rtol=1e-6)
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(2, temperature=-1.0)
    assert model.describe_sampling(model.sample_options(temperature=0.7)) == "temperature=0.7"
    assert isinstance(model.sample_options(), FlowSampleOptions)


def test_affine_flow_learns_a_gaussian():
    torch.manual_seed(0)
    mean, std = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0])
    data = mean + std * torch.randn(2000, 2, generator=torch.Generator().manual_seed(5))
    model = TinyFlow(TOY)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        model.loss(data)["loss"].backward()
        opt.step()
    with torch.no_grad():
        s = model.sample(20000, generator=torch.Generator().manual_seed(6))
    assert torch.allclose(s.mean(0), data.mean(0), atol=0.05)
    assert torch.allclose(torch.cov(s.T), torch.cov(data.T), atol=0.1, rtol=0.05)
    # the fitted flow's NLL is the Gaussian MLE's: 0.5 log det(2 pi e Sigma_hat), diagonal
    nll = -model.log_prob(data).mean().item()
    assert abs(nll - 0.5 * torch.log(2 * math.pi * math.e * data.var(0, correction=0)).sum().item()) < 0.01


def test_discrete_data_get_a_logit_lattice_samples_and_a_lower_bound():
    model = TinyFlow(DIGITS_LIKE)
    assert isinstance(model.bijector[0], Logit) and isinstance(TinyFlow(TOY).bijector[0], Identity)
    s = model.sample(32, generator=torch.Generator().manual_seed(0))
    k = s * 16
    assert s.shape == (32, 1, 4, 4) and torch.equal(k, torch.round(k)) and s.min() >= 0 and s.max() <= 1
    x = torch.randint(0, 17, (8, 1, 4, 4), generator=torch.Generator().manual_seed(1)) / 16.0
    ll = model.log_likelihood(x)
    assert ll.kind == DensityKind.BOUND and str(ll.kind) == "lower bound" and model.density_kind == "lower bound"
    assert ll.values.shape == (8,) and torch.isfinite(ll.values).all()
    # the logit's log-det is inside the likelihood (so bits/dim include it)
    torch.manual_seed(7)
    lp = model.log_prob(x)
    torch.manual_seed(7)
    v, deq_ld = dequantize(x, 17)
    z, ld = model.bijector(v)
    assert torch.allclose(lp, model.base.log_prob(z) + ld + deq_ld)
    z_no_logit, ld_no_logit = Compose(*list(model.bijector)[1:])(v)
    assert not torch.allclose(lp, model.base.log_prob(z_no_logit) + ld_no_logit + deq_ld)
    assert math.isfinite(model.loss(x)["loss"].item())


def test_conditional_flow_passes_labels_as_context():
    info = DataInfo("toy", (2,), num_classes=3)
    model = CondFlow(info)
    with torch.no_grad():
        model.bijector[1].loc.copy_(torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, -4.0]]))
    x = torch.zeros(2, 2)
    assert not torch.allclose(model.log_prob(x, torch.tensor([0, 0])), model.log_prob(x, torch.tensor([1, 1])))
    modes = model.sample(6, temperature=0.0)  # labels drawn in turn: 0, 1, 2, 0, 1, 2
    assert torch.allclose(modes[:3], model.bijector[1].loc) and torch.allclose(modes[3:], modes[:3])
    assert torch.allclose(model.sample(2, y=torch.tensor([2, 2]), temperature=0.0), model.bijector[1].loc[[2, 2]])
    with pytest.raises(DataError, match="labels"):
        model.log_likelihood(x)
    with pytest.raises(ConfigError, match="unconditional"):
        TinyFlow(TOY).sample(2, y=torch.tensor([0, 1]))


def test_flow_without_bijector_says_so():
    with pytest.raises(NotImplementedError, match="build_bijector"):
        Flow(TOY)
    assert Flow.family == "flow" and Flow.has_exact_density
