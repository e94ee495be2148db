"""The named normalizing flows: each keeps the bijector contract, integrates to one, and labels its density.

The layers are checked one by one in ``tests/bijectors``; here every *named* flow (a composition) goes
through :func:`check_bijector` in float64 with random parameters, on vectors and (where the flow has
an image architecture) on images; trained 2-D flows are integrated on a grid; estimates are
labelled as estimates; conditioning, latent round trips and temperature behave.
"""

from __future__ import annotations

import math

import pytest
import torch

from deepgen.bijectors import ContinuousFlow, ResidualBlock
from deepgen.bijectors.testing import check_bijector
from deepgen.data import DataInfo
from deepgen.errors import ConfigError
from deepgen.models.base import DensityKind
from deepgen.registry import get_model_class

FLOWS = ["nice", "realnvp", "glow", "maf", "iaf", "nsf", "planar", "resflow", "ffjord"]
IMAGE_FLOWS = ["realnvp", "glow", "resflow"]  # with a multiscale image architecture
VECTOR = DataInfo("toy3", (3,))
IMAGE = DataInfo("tiny-digits", (1, 4, 4), levels=17, num_classes=3)


def _build(name, info, **options):
    cls = get_model_class(name)
    torch.manual_seed(0)
    return cls(info, cls.Config(**{**cls.test_options, **options}))


def _randomise(model, scale=0.3):
    """Random parameters: flows start at the identity, which passes log-det checks trivially."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return model


def _exact_solvers(model):
    for m in model.modules():
        if isinstance(m, ContinuousFlow):
            m.method, m.steps, m.rtol, m.atol = "rk45", None, 1e-10, 1e-10


@pytest.mark.parametrize("name", FLOWS)
def test_named_flow_keeps_the_bijector_contract_on_vectors(name):
    model = _randomise(_build(name, VECTOR)).double().eval()
    _exact_solvers(model)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    atol = 1e-6 if name == "ffjord" else 1e-7
    check_bijector(model.bijector, x, atol=atol)


@pytest.mark.parametrize("name", IMAGE_FLOWS + ["maf", "nsf"])
def test_named_flow_keeps_the_bijector_contract_on_images(name):
    model = _randomise(_build(name, IMAGE), scale=0.1).double().eval()
    x = 0.05 + 0.9 * torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    check_bijector(model.bijector, x)


@pytest.mark.parametrize("name", IMAGE_FLOWS)
def test_image_flows_are_multiscale_with_latents_of_the_data_shape(name):
    model = _build(name, DataInfo("img", (1, 8, 8), levels=17))
    squeezes = sum(type(m).__name__ == "Squeeze" for m in model.bijector.modules())
    assert squeezes >= 2  # at least two scales on 8x8 (Inverse(Squeeze) wraps the rest)
    z, _ = model.bijector(torch.rand(2, 1, 8, 8))
    assert z.shape == (2, 1, 8, 8)


def test_realnvp_uses_channel_couplings_at_a_1x1_last_scale():
    """4x4 with 3 levels ends at 1x1, where a checkerboard conditions on all or nothing."""
    from deepgen.bijectors import Coupling

    model = _randomise(_build("realnvp", IMAGE, levels=3), scale=0.1).double().eval()
    couplings = [m for m in model.bijector.modules() if isinstance(m, Coupling)]
    at_1x1 = [c for c in couplings if c.shape[1:] == (1, 1)]
    assert at_1x1 and {c.mask_kind for c in at_1x1} == {"channel"}
    assert {c.mask_kind for c in couplings if c.shape[1:] != (1, 1)} >= {"checkerboard"}
    x = 0.05 + 0.9 * torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    check_bijector(model.bijector, x)


def test_too_many_levels_is_a_config_error():
    with pytest.raises(ConfigError, match="levels"):
        _build("realnvp", DataInfo("img", (1, 6, 6), levels=17), levels=4)


def _midpoint_grid(lo, hi, n):
    step = (hi - lo) / n
    t = lo + step * (torch.arange(n, dtype=torch.float64) + 0.5)
    xx, yy = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], 1), step * step


@pytest.mark.slow
@pytest.mark.parametrize("name", FLOWS)
def test_trained_2d_flow_integrates_to_one(name, moons):
    model = _build(name, moons.info)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    steps = 40 if name in ("ffjord", "iaf") else 80
    for _ in range(steps):
        idx = torch.randint(0, len(moons.train.x), (128,), generator=g)
        opt.zero_grad()
        model.loss(moons.train.x[idx])["loss"].backward()
        opt.step()
    model.eval()
    # standardised moons lie within a few units of 0; a briefly trained flow keeps its tails near there
    pts, cell = _midpoint_grid(-7.0, 7.0, 120)
    with torch.no_grad():
        ll = torch.cat([model.log_likelihood(p.float()).values for p in pts.split(4800)])
    mass = ll.double().exp().sum().item() * cell
    assert math.isfinite(mass) and abs(mass - 1) < 0.01, f"{name}: density integrates to {mass:.4f}"


@pytest.mark.parametrize("name", ["resflow", "ffjord"])
def test_estimated_densities_are_labelled_estimates(name):
    low = _build(name, DataInfo("toy", (2,))).eval()
    assert low.log_det_is_exact and low.density_kind == DensityKind.EXACT
    assert low.log_likelihood(torch.zeros(2, 2)).kind == DensityKind.EXACT
    high = _build(name, DataInfo("img", (1, 8, 8), levels=17)).eval()  # 64 entries: over exact_max_dim
    ll = high.log_likelihood(torch.zeros(2, 1, 8, 8))
    assert not high.log_det_is_exact and high.density_kind == DensityKind.ESTIMATE
    assert ll.kind == DensityKind.ESTIMATE and "estimate" in ll.method
    assert not low.train().log_det_is_exact  # training always estimates


def test_resflow_switches_estimator_with_the_mode():
    model = _build("resflow", DataInfo("toy", (2,)))
    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    assert {b.log_det_mode for b in blocks} == {"roulette"}
    model.eval()
    assert {b.log_det_mode for b in blocks} == {"exact"}
    # trained with the biased truncated series, a large model still evaluates with the unbiased roulette
    big = _build("resflow", DataInfo("img", (1, 8, 8), levels=17), train_log_det="series")
    blocks = [m for m in big.modules() if isinstance(m, ResidualBlock)]
    assert {b.log_det_mode for b in blocks} == {"series"}
    big.eval()
    assert {b.log_det_mode for b in blocks} == {"roulette"}


@pytest.mark.parametrize("name", ["nice", "realnvp", "glow", "maf", "iaf", "nsf", "ffjord"])
def test_class_conditional_flows_use_the_label(name):
    model = _randomise(_build(name, IMAGE, class_conditional=True), scale=0.1).eval()
    assert model.conditional and model.context_features == 3
    x = torch.rand(4, 1, 4, 4).mul(16).round().div(16)
    torch.manual_seed(0)
    a = model.log_prob(x, torch.zeros(4, dtype=torch.long))
    torch.manual_seed(0)
    b = model.log_prob(x, torch.full((4,), 2, dtype=torch.long))
    assert not torch.allclose(a, b)
    s = model.sample(3, y=torch.tensor([0, 1, 2]), generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 1, 4, 4)


@pytest.mark.parametrize("name", ["realnvp", "glow"])
def test_encode_decode_and_interpolate(name):
    info = DataInfo("img", (1, 8, 8), levels=17)
    model = _randomise(_build(name, info), scale=0.05).eval()
    x = torch.randint(0, 17, (3, 1, 8, 8)).float() / 16
    z = model.encode(x)
    assert z.shape == x.shape
    assert torch.equal(model.decode(z), x)  # bin centres come back to the same lattice points
    path = model.interpolate(x[:2], x[1:3], steps=5)
    assert path.shape == (2, 5, 1, 8, 8)
    assert torch.equal(path[:, 0], x[:2]) and torch.equal(path[:, -1], x[1:3])


def test_temperature_zero_is_deterministic_and_scales_latents():
    model = _randomise(_build("realnvp", DataInfo("toy", (2,))), scale=0.1).eval()
    a = model.sample(4, temperature=0, generator=torch.Generator().manual_seed(0))
    b = model.sample(4, temperature=0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    wide = model.sample(2000, temperature=1.0, generator=torch.Generator().manual_seed(0)).std(0)
    narrow = model.sample(2000, temperature=0.5, generator=torch.Generator().manual_seed(0)).std(0)
    assert (narrow < wide).all()
