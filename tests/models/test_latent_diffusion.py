"""Latent diffusion: the two stages (a VAE, then a DDPM over its codes started with init_from), the
bound's terms against their definitions, and sampling through the DDPM's options."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from deepgen.cli import main
from deepgen.errors import ConfigError
from deepgen.models.base import DensityKind
from deepgen.train import TrainConfig, Trainer, build_model, load_run

TINY = {"latent_dim": 3, "hidden": (32,), "prior_hidden": (32, 32), "prior_timesteps": 50, "arch": "mlp"}


def _fit(model, data, out, steps, init_from=None):
    cfg = TrainConfig(steps=steps, batch_size=64, seed=0, progress=False, eval_every=0, ckpt_every=0, threads=1)
    return Trainer(model, data, cfg, out, plots=False, quiet=True, init_from=init_from).fit()


def test_the_prior_stage_refuses_an_untrained_autoencoder(digits, tmp_path):
    model = build_model("latent-diffusion", digits.info, {**TINY, "stage": "prior"}, seed=0)
    with pytest.raises(ConfigError, match="init-from RUN:autoencoder"):
        _fit(model, digits, tmp_path, steps=1)


def test_the_bound_is_its_three_terms_and_before_stage_prior_the_vae_elbo(digits):
    model = build_model("latent-diffusion", digits.info, TINY, seed=0).eval()
    x = digits.test.x[:16]
    torch.manual_seed(3)
    z, log_q = model.posterior_draws(x, k=2)
    mu, logvar = model.autoencoder.posterior(x)
    want = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    assert torch.allclose(log_q, want, atol=1e-4)
    # stage autoencoder: the prior term is the exact N(0, I) log-density, so the bound is the VAE's
    # ELBO integrand, and its mean over many draws is the ELBO (analytic KL) within Monte Carlo error
    assert torch.allclose(model.prior_log_prob_bound(z[0]), Normal(0.0, 1.0).log_prob(z[0]).sum(-1), atol=1e-5)
    draws = model.elbo(x, k=400).double()
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1).double()
    zs = mu + torch.exp(0.5 * logvar) * torch.randn(400, *mu.shape)
    rec = torch.stack([model.autoencoder.decoder_log_prob(x, zi) for zi in zs]).double().mean(0)
    se = draws.std(1) / math.sqrt(400)
    assert ((draws.mean(1) - (rec - kl)).abs() < 5 * se + 0.05).all()
    ll = model.log_likelihood(x, k=3)
    assert ll.kind == DensityKind.BOUND and "N(0, I)" in ll.method and ll.stderr is not None


def test_two_stages_freeze_the_vae_and_train_the_prior_on_its_codes(digits, tmp_path):
    ae = build_model("latent-diffusion", digits.info, TINY, seed=0)
    _fit(ae, digits, tmp_path / "ae", steps=30)
    trained = load_run(tmp_path / "ae").model.autoencoder.state_dict()
    assert int(trained["trained_steps"]) == 30

    model = build_model("latent-diffusion", digits.info, {**TINY, "stage": "prior"}, seed=1)
    before = {n: p.detach().clone() for n, p in model.prior.named_parameters()}
    opt = model.configure_optimizers(TrainConfig())["main"]
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in model.prior.parameters()}
    _fit(model, digits, tmp_path / "prior", steps=20, init_from=f"{tmp_path / 'ae'}:autoencoder")
    for k, v in model.autoencoder.state_dict().items():
        assert torch.equal(v, trained[k]), k
    assert all(not torch.equal(before[n], p) for n, p in model.prior.named_parameters())
    model.train()
    assert model.prior.training and not model.autoencoder.training

    # the bound now uses the DDPM's: log p(x|z) + (-DDPM bound on z) - log q(z|x), term by term
    loaded = load_run(tmp_path / "prior").model
    x = digits.test.x[:8]
    torch.manual_seed(5)
    got = loaded.elbo(x)[:, 0]
    torch.manual_seed(5)
    z, log_q = loaded.posterior_draws(x)
    want = loaded.autoencoder.decoder_log_prob(x, z[0]) - loaded.prior.bound(z[0]) - log_q[0]
    assert torch.allclose(got, want, atol=1e-4)
    ll = loaded.log_likelihood(x)
    assert ll.kind == DensityKind.BOUND and "DDPM's bound over T=50" in ll.method and torch.isfinite(ll.values).all()

    # samples: z from the DDPM with its options, decoded onto the data's lattice; mean decodes E[x|z]
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    s = loaded.sample(6, generator=g(0), sampler="ddim", steps=5)
    k = s * (digits.info.levels - 1)
    assert s.shape == (6, 1, 8, 8) and torch.equal(k, k.round())
    assert torch.equal(s, loaded.sample(6, generator=g(0), sampler="ddim", steps=5))
    m = loaded.sample(6, generator=g(1), sampler="ddim", steps=5, mean=True)
    assert m.min() >= 0 and m.max() <= 1 and not torch.equal(m * 16, (m * 16).round())
    assert "DDIM, 5 steps" in loaded.describe_sampling(loaded.sample_options(sampler="ddim", steps=5))


def test_two_stages_from_the_command_line(tmp_path):
    ae, prior = str(tmp_path / "ae"), str(tmp_path / "prior")
    opts = ["-o", "latent_dim=2", "-o", "hidden=16", "-o", "prior_hidden=16", "-o", "prior_timesteps=30"]
    assert (
        main(["train", "latent-diffusion", "--data", "digits", "--steps", "5", "--no-progress", "--out", ae, *opts])
        == 0
    )
    assert (
        main(
            [
                "train",
                "latent-diffusion",
                "--data",
                "digits",
                "--steps",
                "5",
                "--no-progress",
                "--out",
                prior,
                "-o",
                "stage=prior",
                "--init-from",
                f"{ae}:autoencoder",
                *opts,
            ]
        )  # fmt: skip
        == 0
    )
    out = tmp_path / "s.png"
    assert main(["sample", prior, "-n", "8", "-s", "sampler=ddim", "-s", "steps=4", "--out", str(out)]) == 0
    assert out.stat().st_size > 0


def test_the_ode_method_puts_the_probability_flow_density_of_z_in_the_bound(digits):
    model = build_model("latent-diffusion", digits.info, {**TINY, "stage": "prior"}, seed=0).eval()
    x = digits.test.x[:4]
    torch.manual_seed(2)
    ll = model.log_likelihood(x, method="ode")
    torch.manual_seed(2)
    z, log_q = model.posterior_draws(x)
    want = (
        model.autoencoder.decoder_log_prob(x, z[0]) + model.prior.log_likelihood(z[0], method="ode").values - log_q[0]
    )
    assert ll.kind == DensityKind.BOUND and "probability-flow" in ll.method
    assert torch.allclose(ll.values, want, atol=1e-3)
    with pytest.raises(ConfigError):
        model.log_likelihood(x, method="ais")
