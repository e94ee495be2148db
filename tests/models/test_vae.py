"""VAE: sampling options, bounded importance sampling, likelihood heads, old checkpoints."""

from __future__ import annotations

import pytest
import torch

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
        mu, logvar = model.encode(x)
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
