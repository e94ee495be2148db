"""VAE: sampling options, bounded importance sampling, likelihood heads, old checkpoints."""

from __future__ import annotations

import pytest
import torch

from deepgen.config import from_dict
from deepgen.data import DataInfo
from deepgen.errors import ConfigError, DataError
from deepgen.models.vae import VAE, VAEConfig
from deepgen.models.vae import vae as vae_module

DIGITS = DataInfo("digits", (1, 8, 8), 17)


def _vae(info=DIGITS, **kw):
    torch.manual_seed(0)
    return VAE(info, VAEConfig(**{**VAE.test_options, **kw}))


def test_sample_options_mean_and_temperature():
    model = _vae()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    draws = model.sample(6, generator=g())
    k = draws * 16
    assert torch.equal(k, k.round())
    means = model.sample(6, generator=g(), mean=True)
    assert means.shape == (6, 1, 8, 8) and 0 <= means.min() and means.max() <= 1
    assert not torch.equal(means * 16, (means * 16).round())  # means, not lattice draws
    # options arrive as strings from the command line; the same z gives the same means
    assert torch.equal(model.sample(6, generator=g(), mean="true"), means)
    z = torch.randn(6, 4, generator=g())
    assert torch.allclose(model.decode_mean(z), means)
    cold = model.sample(6, generator=g(), mean=True, temperature=0.0001)
    assert torch.allclose(cold, model.decode_mean(torch.zeros(6, 4)).expand(6, -1, -1, -1), atol=1e-3)
    assert VAE.describe_sampling(VAE.sample_options(mean=True, temperature=0.5)) == "mean=True, temperature=0.5"
    with pytest.raises(ConfigError, match="valid"):
        model.sample(2, steps=3)
    with pytest.raises(ConfigError):
        model.sample(2, temperature=0)
    with pytest.raises(ConfigError, match="unconditional"):
        model.sample(2, y=torch.zeros(2))


def test_latent_space_is_the_posterior_mean_and_the_decoder_mean():
    model = _vae().eval()
    x = torch.randint(0, 17, (3, 1, 8, 8)).float() / 16
    assert model.supports("encode")
    z = model.encode(x)
    torch.testing.assert_close(z, model.posterior(x)[0])
    torch.testing.assert_close(model.decode(z), model.decode_mean(z))
    path = model.interpolate(x[:1], x[1:2], steps=5)
    torch.testing.assert_close(path[0, 2], model.decode_mean((z[:1] + z[1:2]) / 2)[0])
    grid, dims = model.traverse(x, steps=3)
    assert grid.shape == (len(dims), 3, 1, 8, 8)


def test_importance_sampling_decodes_in_bounded_blocks(monkeypatch):
    model = _vae(arch="conv")
    monkeypatch.setattr(vae_module, "IS_BLOCK_BYTES", 200_000)  # force blocks of a few z
    model._is_block = None
    block = model._decodes_per_block()
    assert 1 <= block < 40
    rows = []
    model.decoder.register_forward_hook(lambda m, i, o: rows.append(len(o)))
    x = (torch.randint(0, 17, (12, 1, 8, 8)) / 16).float()
    with torch.no_grad():
        est, se = model.log_prob_estimate(x, k=10)
    assert est.shape == (12,) and torch.isfinite(est).all() and torch.isfinite(se).all()
    assert max(rows) <= max(block, 10) and sum(rows) == 12 * 10
    # decoding in row blocks changes nothing: same proposals, same weights
    with torch.no_grad():
        mu, logvar = model.posterior(x)
        torch.manual_seed(1)
        small = model._log_weights(x, mu, logvar, 7, block=3)
        torch.manual_seed(1)
        big = model._log_weights(x, mu, logvar, 7, block=10_000)
    assert torch.allclose(small, big, atol=1e-5)


def test_estimate_is_close_to_the_elbo_and_above_it_on_average():
    model = _vae()
    x = (torch.randint(0, 17, (16, 1, 8, 8)) / 16).float()
    torch.manual_seed(0)
    with torch.no_grad():
        elbo = model.log_likelihood(x)
        est = model.log_likelihood(x, k=50)
    assert elbo.kind.value == "lower bound" and est.kind.value == "estimate" and "K=50" in est.method
    assert est.values.mean() > elbo.values.mean()
    assert (est.values <= 0).all()


@pytest.mark.parametrize("decoder", ["categorical", "logistic", "gaussian"])
def test_decoder_choices(decoder):
    model = _vae(decoder=decoder, arch="mlp")
    assert model.decoder_kind == decoder
    assert model.decoder[-1].out_features == 64 * model.likelihood.params_per_dim
    x = (torch.randint(0, 17, (4, 1, 8, 8)) / 16).float()
    assert torch.isfinite(model.loss(x)["loss"])
    with pytest.raises(DataError, match="binary") as e:
        _vae(decoder="bernoulli")
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="arch=conv needs image data"):
        _vae(DataInfo("moons", (2,)), arch="conv")


def test_checkpoints_with_the_old_log_std_name_load():
    model = _vae(DataInfo("moons", (2,)))
    with torch.no_grad():
        model.log_std.fill_(-1.25)
    sd = model.state_dict()
    assert "likelihood.log_std" in sd
    old = {("log_std" if k == "likelihood.log_std" else k): v for k, v in sd.items()}
    fresh = _vae(DataInfo("moons", (2,)))
    fresh.load_state_dict(old)
    assert torch.equal(fresh.log_std, torch.full((2,), -1.25))


# -- training options: KL warm-up, free bits, beta ---------------------------------------------------
MOONS_OPTS = {"hidden": (8,), "latent_dim": 2}


def _kl_weights_logged(run) -> list[float]:
    import json

    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["kl_weight"] for r in recs if r.get("split") == "train"]


def _train(ds, out, steps, resume=False, **cfg):
    from deepgen.train import TrainConfig, Trainer, build_model

    model = build_model("vae", ds.info, {**MOONS_OPTS, "kl_warmup": 4, "beta": 2.0}, seed=0)
    tc = TrainConfig(steps=steps, batch_size=16, progress=False, eval_every=0, log_every=1, ckpt_every=0, **cfg)
    Trainer(model, ds, tc, out, plots=False, quiet=True, resume=resume).fit()
    return model


def test_kl_warmup_ramps_the_weight_over_steps_and_survives_resume(tmp_path):
    """beta = 2 reached at step 4: 0, 0.5, 1, then (after a resume) 1.5, 2, 2; with gradient
    accumulation the count is in optimiser steps, not micro-batches."""
    from deepgen.data import DataSpec, load_dataset

    ds = load_dataset(DataSpec("moons", n_train=256))
    _train(ds, tmp_path / "a", 3)
    assert _kl_weights_logged(tmp_path / "a") == [0.0, 0.5, 1.0]
    model = _train(ds, tmp_path / "a", 6, resume=True)
    assert _kl_weights_logged(tmp_path / "a") == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    assert model.kl_step.item() == 6
    _train(ds, tmp_path / "b", 3, grad_accum=2)
    assert _kl_weights_logged(tmp_path / "b") == [0.0, 0.5, 1.0]
    assert [model.kl_weight(s) for s in (0, 1, 4, 100)] == [0.0, 0.5, 2.0, 2.0]


def test_kl_weight_enters_the_loss_and_the_step_counts_only_training():
    model = _vae(DataInfo("moons", (2,)), kl_warmup=10, beta=3.0)
    x = torch.randn(32, 2)
    out = model.loss(x)  # step 0: weight 0, the loss is the reconstruction term alone
    assert out["kl_weight"] == 0 and out["kl"] > 0
    assert torch.allclose(out["loss"] * 2, -(out["elbo"] + out["kl"]), atol=1e-5)
    assert model.kl_step.item() == 1
    with torch.no_grad():
        model.loss(x)
    model.eval()
    model.loss(x)
    assert model.kl_step.item() == 1  # neither evaluation without gradients nor eval mode counts
    model.train()
    model.kl_step.fill_(25)
    out = model.loss(x)  # past the warm-up: beta * KL
    assert out["kl_weight"] == 3.0
    assert torch.allclose(out["loss"] * 2, -(out["elbo"] + out["kl"]) + 3.0 * out["kl"], atol=1e-5)
    assert "kl_step" not in _vae(DataInfo("moons", (2,))).state_dict()  # old checkpoints keep loading


def _same_weights(**kw):
    """A VAE with ``kw`` holding the weights of the default one (for comparisons on the same draws)."""
    base = _vae(arch="mlp")
    other = _vae(arch="mlp", **kw)
    other.load_state_dict(base.state_dict(), strict=False)
    return base, other


def test_free_bits_change_the_loss_only_for_dimensions_below_lambda():
    """Kingma et al. (2016): sum_j max(lambda, KL_j), KL_j the batch mean of dimension j's KL."""
    from deepgen.models.vae.vae import kl_normal_per_dim

    x = (torch.randint(0, 17, (32, 1, 8, 8)) / 16).float()
    base = _vae(arch="mlp")
    with torch.no_grad():
        kl_j = kl_normal_per_dim(*base.posterior(x)).mean(0)  # (latent,)
    assert kl_j.min() < kl_j.max()

    def losses(lam):
        plain, fb = _same_weights(free_bits=lam)
        torch.manual_seed(7)
        a = plain.loss(x)
        torch.manual_seed(7)
        b = fb.loss(x)
        return a, b, fb

    a, b, _ = losses(0.5 * kl_j.min().item())  # every dimension above lambda: nothing changes
    assert torch.equal(a["loss"], b["loss"]) and torch.equal(a["elbo"], b["elbo"])
    lam = kl_j.median().item()
    a, b, _ = losses(lam)  # the dimensions below lambda are lifted to it
    lift = torch.clamp(lam - kl_j, min=0).sum() / 64
    assert lift > 0 and torch.allclose(b["loss"] - a["loss"], lift, atol=1e-6)
    assert torch.equal(a["elbo"], b["elbo"]) and torch.equal(a["kl"], b["kl"])  # the true ELBO is reported
    # lambda above every dimension: no KL gradient reaches the encoder, only the reconstruction's
    _, b, fb = losses(10 * kl_j.max().item())
    b["loss"].backward()
    torch.manual_seed(7)
    mu, logvar = fb.posterior(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    rec_grads = torch.autograd.grad(-fb.decoder_log_prob(x, z).mean() / 64, list(fb.encoder.parameters()))
    for p, g in zip(fb.encoder.parameters(), rec_grads):
        assert torch.allclose(p.grad, g, atol=1e-6)


def test_the_logged_elbo_is_the_true_elbo_whatever_the_training_weights():
    x = (torch.randint(0, 17, (16, 1, 8, 8)) / 16).float()
    for kw in ({"beta": 4.0}, {"kl_warmup": 100}, {"free_bits": 1.0}):
        plain, other = _same_weights(**kw)
        torch.manual_seed(3)
        a = plain.loss(x)
        torch.manual_seed(3)
        b = other.loss(x)
        assert torch.equal(a["elbo"], b["elbo"]) and not torch.equal(a["loss"], b["loss"]), kw


def test_training_options_are_checked():
    from deepgen.config import from_dict

    cfg = from_dict(VAEConfig, {"kl_warmup": "1000", "free_bits": "0.25"})  # strings from -o
    assert (cfg.kl_warmup, cfg.free_bits) == (1000, 0.25)
    for bad in ({"kl_warmup": -1}, {"free_bits": -0.1}, {"free_bits": float("inf")}):
        with pytest.raises(ConfigError, match="must be"):
            VAEConfig(**bad)
    with pytest.raises(ConfigError, match="expected an integer"):
        from_dict(VAEConfig, {"kl_warmup": "2.5"})


# -- the command line: sampling options, the per-example ELBO, evaluation timings ---------------------
@pytest.fixture(scope="module")
def moons_run(tmp_path_factory):
    from deepgen.cli import main

    out = tmp_path_factory.mktemp("vae-cli") / "run"
    opts = ["-o", "hidden=8", "-o", "latent_dim=2"]
    assert main(["train", "vae", "--data", "moons", "--steps", "30", "--out", str(out), "-q", *opts]) == 0
    return out


def test_sampling_options_reach_sample_from_the_cli(moons_run, tmp_path, capsys):
    import numpy as np

    from deepgen.cli import main
    from deepgen.train import load_run

    out = tmp_path / "m.npy"
    assert main(["sample", str(moons_run), "-n", "16", "--seed", "3", "-s", "mean=true", "-s", "temperature=0.5",
                 "--out", str(out)]) == 0  # fmt: skip
    run = load_run(moons_run)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    want = run.model.sample(16, generator=g(), mean=True, temperature=0.5)
    assert np.allclose(np.load(out), run.info.to_raw(want), atol=1e-6)
    for other in ({"mean": False, "temperature": 0.5}, {"mean": True, "temperature": 1.0}):
        assert not np.allclose(np.load(out), run.info.to_raw(run.model.sample(16, generator=g(), **other)))
    capsys.readouterr()
    assert main(["sample", str(moons_run), "-n", "4", "-s", "temperature=0", "--out", str(out)]) == 2
    assert "temperature" in capsys.readouterr().err


def test_score_offers_the_per_example_elbo_with_its_standard_error(moons_run, tmp_path, capsys):
    import csv

    from deepgen.cli import main

    assert main(["score", str(moons_run), "--method", "elbo", "--k", "30", "--out", str(tmp_path / "e.csv")]) == 0
    assert "ELBO, K=30" in capsys.readouterr().out
    rows = list(csv.DictReader(open(tmp_path / "e.csv")))
    assert rows and all(r["kind"] == "lower bound" and r["method"] == "ELBO, K=30" for r in rows)
    assert all(float(r["stderr_nats"]) > 0 for r in rows)
    assert main(["score", str(moons_run), "--k", "30", "--out", str(tmp_path / "is.csv")]) == 0
    est = [float(r["nll_nats"]) for r in csv.DictReader(open(tmp_path / "is.csv"))]
    bound = [float(r["nll_nats"]) for r in rows]
    assert sum(bound) / len(bound) > sum(est) / len(est)  # the ELBO's NLL lies above the estimate's


def test_eval_records_the_likelihood_time_and_full_uses_every_example(moons_run, tmp_path, monkeypatch):
    import json

    from deepgen.cli import main

    monkeypatch.setattr(VAE, "eval_k_full", 20)  # --full's K = 5000, cut for the test
    out = tmp_path / "e.json"
    assert main(["eval", str(moons_run), "--full", "--n-samples", "200", "-q", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    nll = res["metrics"]["nll"]
    assert nll["k"] == 20 and nll["method"] == "importance sampling, K=20" and nll["n"] == nll["n_total"]
    assert nll["mc_stderr"] > 0 and res["timings"]["likelihood"] > 0


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_act_sets_every_hidden_activation(arch):
    """``act`` reaches the encoder and the decoder of both architectures (tanh: the IWAE paper's MLP)."""
    relu, tanh = _vae(arch=arch), _vae(arch=arch, act="tanh")
    for m, want, other in ((relu, torch.nn.ReLU, torch.nn.Tanh), (tanh, torch.nn.Tanh, torch.nn.ReLU)):
        for part in (m.encoder, m.decoder):
            kinds = {type(x) for x in part.modules()}
            assert want in kinds and other not in kinds
    x = torch.randint(0, 17, (4, 1, 8, 8)).float()
    est, _ = tanh.log_prob_estimate(x, k=4)
    assert torch.isfinite(est).all()
    with pytest.raises(ConfigError, match="act"):
        from_dict(VAEConfig, {"act": "swish"})  # the command line's -o act=swish
