"""Every registered model, automatically: shapes, finite loss, gradients, save/load, determinism, a step."""

from __future__ import annotations

import pytest
import torch

from conftest import small_options
from deepgen.errors import DataError, NoDensityError
from deepgen.models.base import DensityKind
from deepgen.registry import get_model_class, model_names
from deepgen.train import TrainConfig, Trainer, build_model, load_run

DATASETS = ["moons", "digits", "binary_digits"]


def _build(name, ds, seed=0):
    try:
        return build_model(name, ds.info, small_options(name), seed=seed)
    except DataError:
        pytest.skip(f"{name} does not apply to {ds.info.name}")


def _loss(model, x):
    """A differentiable scalar touching every parameter (GANs: both players' losses)."""
    return model.loss(x)["loss"]


@pytest.fixture(params=DATASETS)
def ds(request):
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("name", model_names())
def test_shapes_and_finite_loss(name, ds):
    model = _build(name, ds)
    x = ds.train.x[:16]
    model.initialize(x)
    out = model.loss(x)
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    s = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, *ds.info.shape)
    assert torch.isfinite(s).all()
    if ds.info.is_discrete:  # samples lie on the data's lattice
        k = s * (ds.info.levels - 1)
        assert torch.allclose(k, k.round(), atol=1e-5) and s.min() >= 0 and s.max() <= 1


@pytest.mark.parametrize("name", model_names())
def test_density_is_labelled(name, ds):
    model = _build(name, ds)
    x = ds.test.x[:8]
    kind = model.density_kind
    assert isinstance(kind, DensityKind)
    if kind in (DensityKind.NONE, DensityKind.UNNORMALISED):
        with pytest.raises(NoDensityError, match="no"):
            model.log_likelihood(x)
        with pytest.raises(NoDensityError):
            model.log_prob(x)
        return
    ll = model.log_likelihood(x)
    assert ll.values.shape == (8,) and torch.isfinite(ll.values).all()
    assert ll.kind == kind and ll.method
    if ds.info.is_discrete:  # a probability mass: log P <= 0 (bounds and estimates too)
        assert (ll.values <= 1e-4).all()


@pytest.mark.parametrize("name", model_names())
def test_gradient_reaches_every_parameter(name, ds):
    model = _build(name, ds)
    model.initialize(ds.train.x[:16])
    _loss(model, ds.train.x[:16]).backward()
    missing = [
        n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("name", model_names())
def test_seeded_runs_are_identical(name, moons, tmp_path):
    cfg = TrainConfig(steps=4, batch_size=16, seed=7, progress=False, eval_every=0, ckpt_every=0)
    runs = []
    for i in range(2):
        model = _build(name, moons, seed=3)
        Trainer(model, moons, cfg, tmp_path / str(i), plots=False, quiet=True).fit()
        runs.append(model)
    a, b = runs
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    sa = a.sample(7, generator=torch.Generator().manual_seed(1))
    sb = b.sample(7, generator=torch.Generator().manual_seed(1))
    assert torch.equal(sa, sb)


@pytest.mark.parametrize("name", model_names())
def test_training_step_and_checkpoint_round_trip(name, ds, tmp_path):
    model = _build(name, ds)
    before = [p.detach().clone() for p in model.parameters()]
    cfg = TrainConfig(steps=3, batch_size=16, progress=False, eval_every=0, log_every=1, ckpt_every=0)
    Trainer(model, ds, cfg, tmp_path, plots=False, quiet=True).fit()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters())), "a step changed nothing"
    loaded = load_run(tmp_path)
    model.eval()
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), loaded.model.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(model.sample(4, generator=g1), loaded.model.sample(4, generator=g2))
    if model.density_kind == DensityKind.EXACT:
        x = ds.test.x[:4]
        assert torch.equal(model.log_prob(x), loaded.model.log_prob(x))


@pytest.mark.parametrize("name", model_names())
def test_model_metadata(name):
    cls = get_model_class(name)
    assert cls.name == name
    assert cls.family != "?" and cls.__doc__ and cls.density_summary
    # the paper (or a book) is cited in the module docstring
    import sys

    doc = sys.modules[cls.__module__].__doc__ or ""
    assert any(ch.isdigit() for ch in doc), f"{cls.__module__} docstring cites no paper/year"


def test_vae_gaussian_decoder_variants(moons):
    for std in ("shared", "per-example"):
        model = (
            _build("vae", moons)
            if std == "shared"
            else build_model("vae", moons.info, {**small_options("vae"), "decoder_std": std}, seed=0)
        )
        x = moons.test.x[:8]
        assert torch.isfinite(model.loss(x)["loss"]) and model.sample(3).shape == (3, 2)
        assert torch.isfinite(model.log_likelihood(x, k=4).values).all()
