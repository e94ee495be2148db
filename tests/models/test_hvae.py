"""Hierarchical VAE (VD-VAE style): per-layer KLs, the ELBO and importance weights, gradient-norm
skipping (in the model and in StepContext), temperature sampling and the latent tools."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from deepgen.data import DataInfo, DataSpec, load_dataset
from deepgen.errors import ConfigError
from deepgen.models.vae import hvae as hvae_module
from deepgen.models.vae.hvae import HVAE, HVAEConfig, gaussian_kl, gaussian_log_prob
from deepgen.train import TrainConfig, Trainer
from deepgen.train.step import StepContext

DIGITS = DataInfo("digits", (1, 8, 8), 17)
MOONS = DataInfo("moons", (2,))


def _model(info=DIGITS, seed=0, dtype=torch.float32, perturb=False, **kw):
    torch.manual_seed(seed)
    model = HVAE(info, HVAEConfig(**{**HVAE.test_options, **kw})).to(dtype)
    if perturb:  # every prior starts at N(0, I): move priors and posteriors away
        with torch.no_grad():
            for cell in model.cells.modules():
                if isinstance(cell, hvae_module.TopDownCell):
                    for net in (cell.prior_net, cell.posterior_net):
                        nn.init.normal_(net.layers[-1].weight, std=0.3)
                        nn.init.normal_(net.layers[-1].bias, std=0.3)
    return model


def _digits_batch(n, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 17, (n, 1, 8, 8), generator=g) / 16).to(dtype)


def _data(info, n, seed=0, dtype=torch.float32):
    if info is DIGITS:
        return _digits_batch(n, seed, dtype)
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("info", [DIGITS, MOONS], ids=["conv", "mlp"])
def test_layer_kls_sum_to_total_and_loss_is_negative_elbo_per_dim(info):
    model = _model(info)
    x = _data(info, 16)
    torch.manual_seed(1)
    out = model.loss(x)
    torch.manual_seed(1)  # the same posterior draws
    params, layers = model.layers(x)
    assert len(layers) == model.num_layers == 3
    rec = model.likelihood.log_prob(params, x)
    kls = torch.stack([layer["kl"] for layer in layers], 1)
    assert (kls >= 0).all()
    layer_keys = sorted(k for k in out if k.startswith("kl_"))
    assert layer_keys == [f"kl_{i}" for i in range(3)]
    assert torch.allclose(sum(out[k] for k in layer_keys), out["kl"], rtol=1e-5)
    for i in range(3):
        assert torch.allclose(out[f"kl_{i}"], kls[:, i].mean())
    assert torch.allclose(out["rec"], rec.mean())
    assert torch.allclose(out["elbo"], out["rec"] - out["kl"])
    assert torch.allclose(out["loss"], -(rec - kls.sum(1)).mean() / info.dim)


def test_gaussian_kl_formula_against_monte_carlo():
    g = torch.Generator().manual_seed(0)
    qm, pm = torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(3, 4, generator=g, dtype=torch.float64)
    qs = torch.rand(3, 4, generator=g, dtype=torch.float64) + 0.3
    ps = torch.rand(3, 4, generator=g, dtype=torch.float64) + 0.3
    n = 200_000
    z = qm + qs * torch.randn(n, 3, 4, generator=g, dtype=torch.float64)
    d = (gaussian_log_prob(z.flatten(0, 1), qm.repeat(n, 1), qs.repeat(n, 1))
         - gaussian_log_prob(z.flatten(0, 1), pm.repeat(n, 1), ps.repeat(n, 1))).view(n, 3)  # fmt: skip
    exact = gaussian_kl(qm, qs, pm, ps)
    assert (d.mean(0) - exact).abs().max() < 4 * (d.std(0) / math.sqrt(n)).max()


@pytest.mark.parametrize("info, n", [(DIGITS, 4000), (MOONS, 40000)], ids=["conv", "mlp"])
def test_analytic_layer_kls_match_monte_carlo(info, n):
    """E over the hierarchical posterior of each layer's analytic KL (given its sampled parents)
    equals the Monte Carlo mean of log q(z_l|x,z_<l) - log p(z_l|z_<l), per layer, in float64."""
    model = _model(info, dtype=torch.float64, perturb=True)
    x = _data(info, 1, seed=3, dtype=torch.float64).expand(n, *info.shape)
    torch.manual_seed(2)
    with torch.no_grad():
        _, layers = model.layers(x)
    for i, layer in enumerate(layers):
        kl, mc = layer["kl"], -layer["log_ratio"]
        assert kl.mean() > 0.05  # the priors differ from the posteriors: a wrong formula would show
        d = kl - mc  # paired: the same parents and draws
        assert d.mean().abs() < 4 * d.std() / math.sqrt(n), f"layer {i}: {kl.mean():.4f} vs {mc.mean():.4f}"


def test_importance_weights_k1_match_elbo_and_larger_k_is_higher():
    model = _model(dtype=torch.float64, perturb=True)
    x = _digits_batch(1, seed=4, dtype=torch.float64).expand(3000, 1, 8, 8)
    torch.manual_seed(5)
    with torch.no_grad():
        lw = model.log_importance_weights(x, 1)[:, 0]
        elbo = model.elbo(x)
    assert lw.shape == elbo.shape == (3000,)
    se = math.sqrt(lw.var() / len(lw) + elbo.var() / len(elbo))
    assert (lw.mean() - elbo.mean()).abs() < 4 * se, (lw.mean(), elbo.mean(), se)
    xb = _digits_batch(16, seed=6, dtype=torch.float64)
    with torch.no_grad():
        elbo_b = model.elbo(xb).mean()
        est5, _ = model.log_prob_estimate(xb, k=5)
        est100, se100 = model.log_prob_estimate(xb, k=100)
    assert elbo_b < est5.mean() < est100.mean()
    assert torch.isfinite(se100).all() and (est100 <= 0).all()  # a log probability mass


def test_importance_sampling_runs_in_bounded_blocks(monkeypatch):
    model = _model()
    monkeypatch.setattr(hvae_module, "IS_BLOCK_BYTES", 50_000)
    model._is_block = None
    block = model._rows_per_block()
    assert 1 <= block < 20
    rows = []
    model.out.register_forward_hook(lambda m, i, o: rows.append(len(o)))
    with torch.no_grad():
        est, se = model.log_prob_estimate(_digits_batch(12), k=10)
    assert est.shape == (12,) and torch.isfinite(est).all() and torch.isfinite(se).all()
    assert max(rows) <= max(block, 10) and sum(rows) == 12 * 10


def _ctx(model, grad_clip=None, lr=1e-2):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    trainer = SimpleNamespace(
        optimizers={"main": opt},
        dist=SimpleNamespace(world_size=1, rank=0, device=torch.device("cpu")),
        config=SimpleNamespace(grad_accum=1, precision="fp32", grad_clip=grad_clip),
        ddp=None,
        forward_module=model,
    )
    return StepContext(trainer)


def test_gradient_norm_skipping_in_train_step():
    info = MOONS
    model = _model(info)
    assert model.config.skip_threshold == 400.0  # the default is on
    ctx = _ctx(model)
    x = _data(info, 16)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    out = model.train_step(x * 1e4, None, ctx)  # far-off data: a huge gradient
    assert out["grad_norm"] > 400 and out["skipped"] == 1.0 and out["skipped_updates"] == 1.0
    assert int(model.skipped_updates) == 1
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    out = model.train_step(x, None, ctx)  # an ordinary batch steps
    assert 0 < out["grad_norm"] < 400 and out["skipped"] == 0.0 and out["skipped_updates"] == 1.0
    assert int(model.skipped_updates) == 1
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    # (the layers before each zero-initialised prior output get their first gradient a step later)
    assert {"out.weight", "stem.weight", "h0", "cells.0.0.prior_net.layers.2.weight"} <= set(moved)
    # the logged norm is the gradient's total norm
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.allclose(out["grad_norm"], torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads])))
    model.config = replace(model.config, skip_threshold=None)  # disabled: no skipping, nothing logged
    out = model.train_step(x * 1e4, None, ctx)
    assert "skipped" not in out and int(model.skipped_updates) == 1


def test_step_context_skips_on_large_or_nonfinite_norm_and_reports_pre_clip_norm():
    net = nn.Linear(3, 2)
    x = torch.ones(4, 3)
    ctx = _ctx(net, grad_clip=0.5)
    w = net.weight.detach().clone()
    loss = lambda s: (net(x) * s).sum()  # noqa: E731
    assert ctx.step(loss(100.0), skip_if_grad_norm_above=10.0) is False
    assert torch.equal(net.weight, w)
    # every one of the 6 weight and 2 bias gradients is 100 * 4 (a batch of 4 ones): the norm before clipping
    assert math.isclose(float(ctx.grad_norms["main"]), math.sqrt(8) * 400.0, rel_tol=1e-5)
    assert ctx.step(loss(float("nan")), skip_if_grad_norm_above=10.0) is False  # NaN: skipped
    assert torch.equal(net.weight, w)
    assert ctx.step(loss(0.01), skip_if_grad_norm_above=10.0) is True
    assert not torch.equal(net.weight, w)
    assert ctx.step(loss(1e6)) is True  # without the option: always steps, as before


def test_training_with_skipping_logs_layer_kls(tmp_path):
    ds = load_dataset(DataSpec("moons", n_train=256))
    torch.manual_seed(0)
    model = HVAE(ds.info, HVAEConfig(**{**HVAE.test_options, "skip_threshold": 1e-9}))  # skip everything
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = TrainConfig(steps=2, batch_size=16, progress=False, eval_every=0, log_every=1, ckpt_every=0)
    Trainer(model, ds, cfg, tmp_path, plots=False, quiet=True).fit()
    assert int(model.skipped_updates) == 2
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r.get("split") == "train"]
    assert train and all(r["skipped"] == 1.0 for r in train)
    assert {"kl", "kl_0", "kl_1", "kl_2", "rec", "grad_norm"} <= set(train[-1])
    assert math.isclose(train[-1]["kl_0"] + train[-1]["kl_1"] + train[-1]["kl_2"], train[-1]["kl"], rel_tol=1e-5)


@pytest.mark.parametrize("info", [DIGITS, MOONS], ids=["conv", "mlp"])
def test_temperature_zero_sampling_is_deterministic(info):
    model = _model(info, perturb=True).eval()
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    cold = model.sample(6, generator=g(0), mean=True, temperature=0)
    assert torch.equal(cold, model.sample(6, generator=g(1), mean=True, temperature=0))  # no randomness left
    assert torch.allclose(cold, cold[:1].expand_as(cold))  # every sample is the same prior-mean image
    warm = model.sample(6, generator=g(0), mean=True, temperature=1)
    assert not torch.allclose(warm, model.sample(6, generator=g(1), mean=True, temperature=1))
    assert torch.equal(model.sample(6, generator=g(2)), model.sample(6, generator=g(2)))
    assert model.sample_options(temperature="0").temperature == 0.0
    with pytest.raises(ConfigError):
        model.sample(2, temperature=-1)


def test_encode_gives_every_layer_and_decode_mean_uses_them():
    model = _model(perturb=True).eval()
    x = _digits_batch(5)
    zs = model.posterior_means(x)
    assert [tuple(z.shape) for z in zs] == [(5, 2, 2, 2), (5, 2, 4, 4), (5, 2, 8, 8)]
    rec = model.decode_mean(zs)
    assert rec.shape == (5, 1, 8, 8) and 0 <= rec.min() and rec.max() <= 1
    # all layers given: the prior's temperature plays no part; fewer layers: it does
    assert torch.equal(rec, model.decode_mean(zs, temperature=1.0, generator=torch.Generator().manual_seed(0)))
    part = model.decode_mean(zs[:1], temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(part, model.decode_mean(zs[:1]))
    # the means are the posterior means of the deterministic pass: perturbing one changes the output
    assert not torch.allclose(rec, model.decode_mean([zs[0] + 1.0, *zs[1:]]))


def test_latent_capability_flattens_the_layers_and_decode_inverts_the_layout():
    model = _model(perturb=True).eval()
    x = _digits_batch(3)
    z = model.encode(x)
    assert model.supports("encode") and z.shape == (3, 2 * (4 + 16 + 64))
    torch.testing.assert_close(model.decode(z), model.decode_mean(model.posterior_means(x)))
    assert model.interpolate(x[:1], x[1:2], steps=4).shape == (1, 4, 1, 8, 8)
    with pytest.raises(ConfigError, match="latents"):
        model.decode(z[:, :-1])


def test_bad_options():
    with pytest.raises(ConfigError, match="scales"):
        HVAEConfig(scales=(1, 0))
    with pytest.raises(ConfigError, match="min_std"):
        HVAEConfig(min_std=1.5)
    with pytest.raises(ConfigError):
        HVAEConfig(width=0)


def test_kl_warmup_weights_every_layer_and_survives_resume(tmp_path):
    """kl_warmup = 4: the loss is -(rec - w KL)/dim with w = 0, 0.25, ... counted in training
    losses only; the logged ELBO stays the true one; a resumed run continues the ramp."""
    model = _model(MOONS, kl_warmup=4)
    x = _data(MOONS, 16)
    torch.manual_seed(1)
    out = model.loss(x)
    assert out["kl_weight"] == 0 and out["kl"] > 0
    assert torch.allclose(out["loss"], -out["rec"] / 2) and torch.allclose(out["elbo"], out["rec"] - out["kl"])
    with torch.no_grad():
        model.loss(x)
    assert model.kl_step.item() == 1  # evaluation without gradients does not count
    model.kl_step.fill_(2)
    torch.manual_seed(1)
    out = model.loss(x)
    assert out["kl_weight"] == 0.5 and torch.allclose(out["loss"], -(out["rec"] - 0.5 * out["kl"]) / 2)
    assert "kl_weight" not in _model(MOONS).loss(x)  # without warm-up: the plain ELBO, no buffer
    assert "kl_step" not in _model(MOONS).state_dict()
    with pytest.raises(ConfigError, match="kl_warmup"):
        HVAEConfig(kl_warmup=-1)

    ds = load_dataset(DataSpec("moons", n_train=128))
    cfg = dict(batch_size=16, progress=False, eval_every=0, log_every=1, ckpt_every=0, threads=1)
    opts = {**HVAE.test_options, "kl_warmup": 4}
    Trainer(HVAE(ds.info, HVAEConfig(**opts)), ds, TrainConfig(steps=2, **cfg), tmp_path, plots=False, quiet=True).fit()
    m = HVAE(ds.info, HVAEConfig(**opts))
    Trainer(m, ds, TrainConfig(steps=5, **cfg), tmp_path, plots=False, quiet=True, resume=True).fit()
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["kl_weight"] for r in rows if r.get("split") == "train"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert m.kl_step.item() == 5
