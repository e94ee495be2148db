"""Every registered model, automatically, on every data kind it supports.

Models are discovered by the registry (every module under ``deepgen.models``); each runs with its
own ``test_options`` and ``test_sample_options``. Checked for each model and dataset: shapes and a
finite loss, samples on the data's support, labelled densities (also under ``torch.no_grad``, as the
CLI calls them), that an optimiser step moves every parameter (through the trainer, so models with
their own ``train_step`` -- GANs, CD-trained RBMs -- and identity-initialised flows are tested as they
train), seeded determinism, and a checkpoint round trip. Conditional models get labels; a model
that does not apply to a dataset says so with a DataError and is skipped there.
"""

from __future__ import annotations

import sys

import pytest
import torch

from conftest import sample_test_options, small_options
from deepgen.data.transforms import snap
from deepgen.errors import DataError, NoDensityError
from deepgen.models.base import CAPABILITIES, DATA_KINDS, FAMILIES, DensityKind, GenerativeModel
from deepgen.registry import get_model_class, model_modules, model_names
from deepgen.train import TrainConfig, Trainer, build_model, load_run

#: Test datasets by data kind (conftest fixtures). Every kind a model declares must have one here.
DATASETS = {
    "examples": ["moons", "digits", "binary_digits"],
    "signal": ["waves_signal"],
    "scene": ["spheres_scene"],
    "domains": ["digit_domains"],
}
CASES = [(n, d) for n in model_names() for k in get_model_class(n).data_kinds for d in DATASETS.get(k, [])]


def _build(name, ds, seed=0):
    try:
        return build_model(name, ds.info, small_options(name), seed=seed)
    except DataError as e:
        pytest.skip(f"{name} does not apply to {ds.info.name}: {e}")


def _labels(model, ds, split, n):
    """What the trainer passes as ``y``: labels for conditional models, targets for signals and scenes,
    a batch of domain B for two-domain models."""
    if model.info.kind == "domains":
        return ds.draw_b(n, torch.Generator().manual_seed(0))
    if model.conditional or model.info.kind in ("signal", "scene"):
        return split.y[:n]
    return None


def _sample(model, n, seed):
    """Samples; for translation-only models, translations of seeded inputs on domain A's support."""
    g = torch.Generator().manual_seed(seed)
    if not model.samples_from_noise:
        x = torch.rand(n, *model.info.shape, generator=g)
        x = snap(x, model.info.levels) if model.info.is_discrete else x
        return model.translate(x, generator=g, **sample_test_options(model.name))
    return model.sample(n, generator=g, **sample_test_options(model.name))


def _fit(model, ds, out, steps, seed=0):
    cfg = TrainConfig(steps=steps, batch_size=16, seed=seed, progress=False, eval_every=0, log_every=1, ckpt_every=0)
    return Trainer(model, ds, cfg, out, plots=False, quiet=True).fit()


@pytest.fixture
def ds(request):
    return request.getfixturevalue(request.param)


def _params(cases):
    return pytest.mark.parametrize("name, ds", cases, indirect=["ds"], ids=[f"{n}-{d}" for n, d in cases])


@_params(CASES)
def test_shapes_finite_loss_and_samples_on_support(name, ds):
    model = _build(name, ds)
    x, y = ds.train.x[:16], _labels(model, ds, ds.train, 16)
    model.initialize(x)
    if type(model).loss is not GenerativeModel.loss:  # models trained only by train_step have no loss
        out = model.loss(x, y)
        assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    model.eval()
    for grad in (True, False):  # the CLI samples under no_grad; a Langevin sampler must still work
        with torch.set_grad_enabled(grad):
            s = _sample(model, 5, 0)
        assert s.shape == (5, *ds.info.shape) and torch.isfinite(s).all()
        assert not s.requires_grad
    if ds.info.is_discrete:  # samples lie on the data's lattice
        k = s * (ds.info.levels - 1)
        assert torch.allclose(k, k.round(), atol=1e-5) and s.min() >= 0 and s.max() <= 1


@_params(CASES)
def test_density_is_labelled(name, ds):
    model = _build(name, ds)
    model.eval()
    x, y = ds.test.x[:8], _labels(model, ds, ds.test, 8)
    kind = model.density_kind
    assert isinstance(kind, DensityKind)
    if kind == DensityKind.NONE:
        with pytest.raises(NoDensityError, match="no"):
            model.log_likelihood(x, y=y)
        with pytest.raises(NoDensityError):
            model.log_prob(x, y)
        return
    model.prepare_likelihood(x)
    for grad in (True, False):
        with torch.set_grad_enabled(grad):
            ll = model.log_likelihood(x, y=y)
        assert ll.values.shape == (8,) and torch.isfinite(ll.values).all()
        assert not ll.values.requires_grad, "log-likelihood values must be detached"
        assert ll.kind == kind and ll.method
    if kind == DensityKind.UNNORMALISED:
        return
    if ds.info.is_discrete:  # a probability mass: log P <= 0 (bounds and estimates too)
        assert (ll.values <= 1e-4).all()
    if model.eval_k:
        est = model.log_likelihood(x, y=y, k=3)
        assert est.values.shape == (8,) and torch.isfinite(est.values).all()
    for method in model.likelihood_methods:
        alt = model.log_likelihood(x, y=y, method=method)
        assert alt.values.shape == (8,) and torch.isfinite(alt.values).all()


@_params(CASES)
def test_a_training_step_moves_every_parameter(name, ds, tmp_path):
    """Two optimiser steps through the trainer: the first may only move the layers an identity
    initialisation leaves with gradients (zero-initialised couplings); after the second every
    parameter must have moved."""
    model = _build(name, ds)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _fit(model, ds, tmp_path, steps=2)
    frozen = [n for n, p in model.named_parameters() if p.requires_grad and torch.equal(before[n], p.detach())]
    assert not frozen, f"no training step reached {frozen}"


@_params(CASES)
def test_seeded_runs_are_identical(name, ds, tmp_path):
    runs = []
    for i in range(2):
        model = _build(name, ds, seed=3)
        _fit(model, ds, tmp_path / str(i), steps=3, seed=7)
        runs.append(model)
    a, b = runs
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), n
    assert torch.equal(_sample(a, 7, 1), _sample(b, 7, 1))


@_params(CASES)
def test_checkpoint_round_trip(name, ds, tmp_path):
    model = _build(name, ds)
    _fit(model, ds, tmp_path, steps=2)
    loaded = load_run(tmp_path)
    model.eval()
    assert list(model.state_dict()) == list(loaded.model.state_dict())  # no key lost or added on the way
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), loaded.model.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2), k1
    assert torch.equal(_sample(model, 4, 5), _sample(loaded.model, 4, 5))
    if model.density_kind in (DensityKind.EXACT, DensityKind.UNNORMALISED):
        x, y = ds.test.x[:4], _labels(model, ds, ds.test, 4)
        assert torch.equal(model.log_likelihood(x, y=y).values, loaded.model.log_likelihood(x, y=y).values)


@pytest.mark.parametrize("name", model_names())
def test_model_metadata(name):
    cls = get_model_class(name)
    assert cls.name == name
    assert cls.family in FAMILIES, f"{name}: family {cls.family!r} is not one of {FAMILIES}"
    assert cls.__doc__ and cls.density_summary
    assert set(cls.data_kinds) <= set(DATA_KINDS)
    assert any(k in DATASETS for k in cls.data_kinds), f"{name}: no test dataset for its data kinds {cls.data_kinds}"
    assert set(cls.capabilities()) <= set(CAPABILITIES)
    cls.sample_options(**cls.test_sample_options)  # test options are valid sampling options
    build_cfg = cls.Config
    from deepgen.config import from_dict

    from_dict(build_cfg, cls.test_options)
    if cls.__module__.startswith("deepgen."):  # the paper (or a book) is cited in the module docstring
        doc = sys.modules[cls.__module__].__doc__ or ""
        assert any(ch.isdigit() for ch in doc), f"{cls.__module__} docstring cites no paper/year"


def test_every_model_module_is_discovered():
    """Every file under src/deepgen/models that registers a model is found by the registry's discovery
    (checked against the files on disk, not against the discovery itself) and registers its model."""
    import re
    from pathlib import Path

    import deepgen.models as pkg

    root = Path(pkg.__path__[0])
    registered = {get_model_class(n).__module__ for n in model_names()}
    discovered = set(model_modules())
    for path in sorted(root.rglob("*.py")):
        if not re.search(r"^@register\(", path.read_text(), re.MULTILINE):  # a decorator, not a mention
            continue
        mod = "deepgen.models." + ".".join(path.relative_to(root).with_suffix("").parts)
        assert mod in discovered, f"{path} registers a model but the registry does not discover it"
        assert mod in registered, f"{mod} uses @register but registered no model"


def test_unconditional_models_refuse_labels(digits):
    model = build_model("vae", digits.info, small_options("vae"), seed=0)
    with pytest.raises(Exception, match="unconditional"):
        model.sample(2, y=torch.tensor([0, 1]))
