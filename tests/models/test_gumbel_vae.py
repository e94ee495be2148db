"""Gumbel-softmax VAE: the relaxation, straight-through, the discrete KL, exact enumeration of a tiny
latent space against the ELBO and importance sampling, the temperature schedule and exact resume."""

from __future__ import annotations

import json
import math

import pytest
import torch

from deepgen.data import DataInfo
from deepgen.errors import ConfigError
from deepgen.models.base import DensityKind
from deepgen.models.vae import gumbel as gumbel_module
from deepgen.models.vae.gumbel import GumbelVAE, GumbelVAEConfig
from deepgen.nn.gumbel import gumbel_softmax, kl_categorical_uniform, sample_gumbel
from deepgen.train import TrainConfig, Trainer

BITS = DataInfo("bits", (6,), 2)
EVERY_X = ((torch.arange(64).unsqueeze(1) >> torch.arange(6)) % 2).double()  # all 2^6 binary vectors


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# -- the relaxation --------------------------------------------------------------------------------
def test_samples_approach_one_hot_as_tau_goes_to_zero():
    logits = torch.randn(2000, 5, generator=_gen(1), dtype=torch.float64)
    max_prob = []
    for tau in (2.0, 1.0, 0.1, 0.01):
        y = gumbel_softmax(logits, tau, generator=_gen(2))
        assert torch.allclose(y.sum(-1), torch.ones(2000, dtype=torch.float64)) and (y >= 0).all()
        max_prob.append(y.max(-1).values.mean().item())
    assert max_prob == sorted(max_prob) and max_prob[0] < 0.8  # soft at high temperature
    assert max_prob[-1] > 0.99
    with pytest.raises(ValueError, match="tau"):
        gumbel_softmax(logits, 0.0)


def _chi_square(counts, probs):
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def test_gumbel_max_draws_follow_softmax():
    """argmax(logits + g) is an exact categorical draw: a chi-square test on 40,000 draws (4 degrees
    of freedom; 18.5 is the 0.1% critical value), which a slightly different distribution fails."""
    logits = torch.tensor([1.5, 0.0, -1.0, 0.5, 0.2], dtype=torch.float64)
    n = 40_000
    y = gumbel_softmax(logits.expand(n, 5), 0.5, hard=True, generator=_gen(3))
    counts = y.sum(0)
    assert counts.sum() == n
    assert _chi_square(counts, torch.softmax(logits, 0)) < 18.5
    assert _chi_square(counts, torch.softmax(logits / 1.1, 0)) > 100  # the test can tell them apart
    # the relaxed sample at any temperature has the same argmax as the hard one from the same noise
    soft = gumbel_softmax(logits.expand(n, 5), 3.0, generator=_gen(3))
    assert torch.equal(soft.argmax(-1), y.argmax(-1))


def test_straight_through_is_one_hot_forward_and_relaxed_backward():
    logits = torch.randn(64, 3, 4, generator=_gen(4), dtype=torch.float64)
    w = torch.randn(64, 3, 4, generator=_gen(5), dtype=torch.float64)
    grads, values = [], []
    for hard in (True, False):
        lg = logits.clone().requires_grad_(True)
        y = gumbel_softmax(lg, 0.7, hard=hard, generator=_gen(6))  # the same noise both times
        (w * y).sum().backward()
        grads.append(lg.grad)
        values.append(y.detach())
    hard_y, soft_y = values
    assert torch.equal(hard_y, torch.nn.functional.one_hot(soft_y.argmax(-1), 4).double())  # exactly one-hot
    assert torch.equal(grads[0], grads[1])
    assert grads[1].abs().sum() > 0


def test_gumbel_noise_is_finite_and_standard():
    g = sample_gumbel((200_000,), generator=_gen(7))
    assert torch.isfinite(g).all()
    # Gumbel(0, 1): mean = Euler-Mascheroni constant, variance = pi^2 / 6
    assert abs(g.mean().item() - 0.5772) < 0.01 and abs(g.var().item() - math.pi**2 / 6) < 0.03


# -- the discrete KL -------------------------------------------------------------------------------
def test_discrete_kl_matches_brute_force_and_vanishes_for_uniform_q():
    logits = 2 * torch.randn(5, 3, 4, generator=_gen(8), dtype=torch.float64)
    brute = torch.zeros(5, dtype=torch.float64)
    for b in range(5):
        for n in range(3):
            q = [math.exp(v) for v in logits[b, n].tolist()]
            s = sum(q)
            brute[b] += sum(qk / s * math.log(qk / s * 4) for qk in q)
    kl = kl_categorical_uniform(logits)
    assert kl.shape == (5,) and torch.allclose(kl, brute, rtol=1e-12, atol=1e-12)
    assert (kl > 0).all()
    flat = torch.randn(5, 3, 1, dtype=torch.float64).expand(5, 3, 4)  # constant per variable: q uniform
    assert torch.equal(kl_categorical_uniform(flat), torch.zeros(5, dtype=torch.float64))


# -- a latent small enough to enumerate -------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    """N = 2 variables of K = 3 classes on 6-bit vectors, in float64; random weights scaled up so that
    q(z|x) is far from the true posterior and p(x|z) differs between states."""
    torch.manual_seed(0)
    model = GumbelVAE(BITS, GumbelVAEConfig(latent_vars=2, categories=3, hidden=(16,))).double()
    with torch.no_grad():
        model.encoder[-1].weight.mul_(4)
        model.decoder[-1].weight.mul_(4)
        model.decoder[-1].bias.mul_(2)
    return model


def _exact_tables(model, x):
    """log p(x, z), log q(z|x) for every latent state, (B, K^N) each."""
    states = model.latent_states()
    log_q = torch.log_softmax(model.posterior_logits(x), -1)
    log_qz = sum(log_q[:, i, states[:, i]] for i in range(states.shape[1]))
    return model.log_joint_all(x), log_qz


@torch.no_grad()
def test_enumeration_sums_to_one_and_bounds_the_elbo(tiny):
    log_px = tiny.exact_log_prob(EVERY_X)
    assert tiny.latent_states().shape == (9, 2)
    assert abs(torch.logsumexp(log_px, 0).item()) < 1e-12  # sum_x p(x) = 1
    log_joint, log_qz = _exact_tables(tiny, EVERY_X)
    assert torch.allclose(log_qz.logsumexp(1), torch.zeros(64, dtype=torch.float64), atol=1e-12)
    elbo = (log_qz.exp() * (log_joint - log_qz)).sum(1)
    assert (elbo <= log_px).all() and (log_px - elbo).mean() > 0.05  # a real gap: KL(q || posterior)
    # the model's one-sample ELBO (one exact z, closed-form KL) is unbiased for the exact ELBO
    torch.manual_seed(1)
    draws = torch.stack([tiny.elbo(EVERY_X) for _ in range(2000)])
    z = (draws.mean(0) - elbo) / (draws.std(0) / math.sqrt(2000) + 1e-12)
    assert z.abs().max() < 5
    if "elbo" in tiny.likelihood_methods:  # the shared K-draw ELBO estimate, from the exact log-weights
        est = tiny.log_likelihood(EVERY_X, method="elbo", k=2000)
        assert ((est.values - elbo) / est.stderr).abs().max() < 5
    ll = tiny.log_likelihood(EVERY_X, method="exact")
    assert ll.kind == DensityKind.EXACT and "3^2" in ll.method and torch.equal(ll.values, log_px)


@torch.no_grad()
def test_importance_sampling_converges_to_the_exact_log_prob(tiny):
    log_px = tiny.exact_log_prob(EVERY_X)
    torch.manual_seed(2)
    est1, _ = tiny.log_prob_estimate(EVERY_X, k=1)
    est, se = tiny.log_prob_estimate(EVERY_X, k=1000)
    err1, err = (est1 - log_px).abs().mean(), (est - log_px).abs().mean()
    assert err < 0.1 * err1
    assert ((est - log_px).abs() / se).max() < 5  # within a few standard errors, every x
    labelled = tiny.log_likelihood(EVERY_X, k=50)
    assert labelled.kind == DensityKind.ESTIMATE and "K=50" in labelled.method


@torch.no_grad()
def test_log_weights_are_exact_for_discrete_z(tiny):
    """Each importance weight is log p(x, z) - log q(z|x) of the drawn state, read off the tables."""
    x = EVERY_X[:5]
    log_joint, log_qz = _exact_tables(tiny, x)
    torch.manual_seed(3)
    lw = tiny.log_importance_weights(x, 200)
    table = log_joint - log_qz
    # every weight is one of the table's 9 values for its x, and all draws have q > 0
    diff = (lw.unsqueeze(-1) - table.unsqueeze(1)).abs().min(-1).values
    assert lw.shape == (5, 200) and diff.max() < 1e-9


@torch.no_grad()
def test_reported_training_elbo_is_the_discrete_one(tiny):
    """``loss()["elbo"]`` decodes the exact one-hot draw, so it averages to the exact ELBO; the relaxed
    objective at tau = 1 does not."""
    rep = 500
    x = EVERY_X.repeat(rep, 1)
    log_joint, log_qz = _exact_tables(tiny, EVERY_X)
    q = log_qz.exp()
    elbo = (q * (log_joint - log_qz)).sum(1)
    var = (q * log_joint**2).sum(1) - (q * log_joint).sum(1) ** 2  # Var_q log p(x|z) per x
    se = math.sqrt(var.sum().item() * rep) / len(x)
    torch.manual_seed(4)
    out = tiny.loss(x)
    assert out["tau"] == 1.0
    assert abs(out["elbo"].item() - elbo.mean().item()) < 5 * se
    relaxed = -out["loss"].item() * BITS.dim  # beta = 1: the relaxed ELBO
    assert abs(relaxed - elbo.mean().item()) > 20 * se
    hard = GumbelVAE(BITS, GumbelVAEConfig(latent_vars=2, categories=3, hidden=(16,), hard=True)).double()
    hard.load_state_dict(tiny.state_dict())
    out = hard.loss(x)
    assert abs(out["elbo"].item() - elbo.mean().item()) < 5 * se
    assert math.isclose(-out["loss"].item() * BITS.dim, out["elbo"].item(), rel_tol=1e-9)


def test_exact_enumeration_refuses_large_latents_in_one_line():
    model = GumbelVAE(BITS, GumbelVAEConfig(hidden=(8,)))  # 10^30 states
    with pytest.raises(ConfigError, match="10\\^30 latent states") as e:
        model.log_likelihood(EVERY_X.float(), method="exact")
    assert "\n" not in str(e.value)
    assert GumbelVAE(BITS, GumbelVAEConfig(latent_vars=16, categories=2, hidden=(8,))).latent_states().shape == (
        2**16,
        16,
    )


@torch.no_grad()
def test_blocks_do_not_change_the_numbers(tiny, monkeypatch):
    x = EVERY_X[:10]
    tiny._is_block = None
    big = tiny.exact_log_prob(x)
    torch.manual_seed(5)
    big_w = tiny._log_weights(x, tiny.posterior_logits(x), 7, block=10_000)
    monkeypatch.setattr(gumbel_module, "IS_BLOCK_BYTES", 2_000)  # a few z per decoder call
    tiny._is_block = None
    block = tiny._decodes_per_block()
    assert 1 <= block < 9
    rows = []
    hook = tiny.decoder.register_forward_hook(lambda m, i, o: rows.append(len(o)))
    try:
        small = tiny.exact_log_prob(x)
        torch.manual_seed(5)
        small_w = tiny._log_weights(x, tiny.posterior_logits(x), 7, block=block)
    finally:
        hook.remove()
        tiny._is_block = None
    assert max(rows) <= max(block, 7)
    assert torch.allclose(small, big, atol=1e-12) and torch.allclose(small_w, big_w, atol=1e-12)


# -- temperature, training, sampling ---------------------------------------------------------------
def test_temperature_schedule_and_config_checks():
    cfg = GumbelVAEConfig(tau0=2.0, tau_min=0.5, anneal_rate=1e-3)
    model = GumbelVAE(BITS, GumbelVAEConfig(**{**GumbelVAE.test_options, "tau0": 2.0, "anneal_rate": 1e-3}))
    assert model.temperature(0) == 2.0
    assert math.isclose(model.temperature(500), 2.0 * math.exp(-0.5))
    assert model.temperature(10**6) == cfg.tau_min
    with pytest.raises(ConfigError, match="tau_min"):
        GumbelVAEConfig(tau0=0.5, tau_min=1.0)
    with pytest.raises(ConfigError, match="categories"):
        GumbelVAEConfig(categories=1)
    with pytest.raises(ConfigError, match="anneal_rate"):
        GumbelVAEConfig(anneal_rate=-1.0)


def test_train_step_anneals_by_the_global_step_and_resumes_exactly(binary_digits, tmp_path):
    opts = {**GumbelVAE.test_options, "anneal_rate": 0.2, "tau_min": 0.1}

    def run(out, steps, resume=False):
        torch.manual_seed(3)
        model = GumbelVAE(binary_digits.info, GumbelVAEConfig(**opts))
        cfg = TrainConfig(steps=steps, batch_size=16, seed=7, progress=False, eval_every=0, log_every=1, ckpt_every=1)
        Trainer(model, binary_digits, cfg, out, plots=False, quiet=True, resume=resume).fit()
        return model

    straight = run(tmp_path / "a", 4)
    run(tmp_path / "b", 2)
    resumed = run(tmp_path / "b", 4, resume=True)
    for (n, p), q in zip(straight.named_parameters(), resumed.parameters()):
        assert torch.equal(p, q), n
    for out in ("a", "b"):
        rows = [json.loads(line) for line in (tmp_path / out / "metrics.jsonl").read_text().splitlines()]
        taus = {r["step"]: r["tau"] for r in rows if r.get("split") == "train"}
        assert [round(taus[s + 1], 12) for s in range(4)] == [round(math.exp(-0.2 * s), 12) for s in range(4)]


def test_sampling_draws_uniform_states_and_offers_only_meaningful_options(binary_digits):
    torch.manual_seed(0)
    model = GumbelVAE(binary_digits.info, GumbelVAEConfig(**GumbelVAE.test_options))
    draws = model.sample(6, generator=_gen(9))
    assert draws.shape == (6, 1, 8, 8) and set(draws.unique().tolist()) <= {0.0, 1.0}
    means = model.sample(6, generator=_gen(9), mean="true")
    z = torch.randint(4, (6, 4), generator=_gen(9))
    with torch.no_grad():
        expected = model.likelihood.mean(model.decoder(model.one_hot(z)))
    assert torch.allclose(means, expected)
    assert GumbelVAE.describe_sampling(GumbelVAE.sample_options(mean=True)) == "mean=True"
    with pytest.raises(ConfigError, match="valid"):
        model.sample(2, temperature=0.5)
