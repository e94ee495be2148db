"""VQ-VAE: the vector quantiser (EMA codebook, dead-code restarts, straight-through gradient, losses,
usage statistics) and the two-stage model (autoencoder, then a transformer prior started with init_from)."""

from __future__ import annotations

import math

import pytest
import torch

from deepgen.errors import ConfigError
from deepgen.models.base import DensityKind
from deepgen.models.vae.vqvae import VQVAE, VQVAEConfig
from deepgen.nn.quantize import VectorQuantizer, codebook_usage
from deepgen.train import TrainConfig, Trainer, build_model, load_run

#: tiny networks: 8x8 digits -> a 2x2 grid of codes from 8 vectors of size 4
TINY = {
    "num_codes": 8,
    "code_dim": 4,
    "channels": (8, 16),
    "prior_d_model": 16,
    "prior_layers": 1,
    "prior_heads": 2,
}


def _quantizer(codebook, count=None, decay=0.9, restart_after=0, ema=True):
    codebook = torch.tensor(codebook, dtype=torch.float64)
    vq = VectorQuantizer(
        len(codebook), codebook.shape[1], commitment=0.25, ema=ema, decay=decay, eps=1e-5, restart_after=restart_after
    ).double()
    with torch.no_grad():
        vq.codebook.copy_(codebook)
        if ema:
            count = torch.tensor(count, dtype=torch.float64)
            vq.ema_count.copy_(count)
            vq.ema_sum.copy_(codebook * count[:, None])
    return vq


def _fit(model, data, out, steps, init_from=None, lr=1e-3):
    cfg = TrainConfig(
        steps=steps,
        batch_size=64,
        seed=0,
        lr=lr,
        progress=False,
        eval_every=0,
        ckpt_every=0,
        log_every=steps,
        threads=1,
    )
    return Trainer(model, data, cfg, out, plots=False, quiet=True, init_from=init_from).fit()


def _optimised(model):
    opt = model.configure_optimizers(TrainConfig())["main"]
    return {id(p) for g in opt.param_groups for p in g["params"]}


# -- the quantiser ---------------------------------------------------------------------------------
def test_ema_update_follows_the_closed_form_and_moves_codes_towards_their_means():
    old = [[0.0, 0.0], [1.0, 0.0], [0.0, 5.0]]
    vq = _quantizer(old, count=[2.0, 1.0, 3.0], decay=0.9)
    z = torch.tensor([[[0.2, 0.1], [-0.1, 0.3]], [[0.9, 0.2], [1.3, -0.2]]], dtype=torch.float64)  # (B=2, T=2, 2)
    out = vq.train()(z)
    assert out.codes.tolist() == [[0, 0], [1, 1]]  # code 2 is nobody's nearest
    assert torch.equal(
        out.z_q, torch.tensor(old, dtype=torch.float64)[out.codes]
    )  # z_q: the codebook before the update

    flat = z.reshape(-1, 2)
    n = torch.tensor([2.0, 2.0, 0.0], dtype=torch.float64)
    s = torch.stack([flat[:2].sum(0), flat[2:].sum(0), torch.zeros(2, dtype=torch.float64)])
    count = 0.9 * torch.tensor([2.0, 1.0, 3.0], dtype=torch.float64) + 0.1 * n
    sums = 0.9 * torch.tensor(old, dtype=torch.float64) * torch.tensor([2.0, 1.0, 3.0], dtype=torch.float64)[:, None]
    sums = sums + 0.1 * s
    total = count.sum()
    smoothed = (count + 1e-5) / (total + 3 * 1e-5) * total
    assert torch.allclose(vq.ema_count, count)
    assert torch.allclose(vq.ema_sum, sums)
    assert torch.allclose(vq.codebook, sums / smoothed[:, None], atol=1e-12)
    for k, rows in ((0, flat[:2]), (1, flat[2:])):  # each used code moved towards its encodings' mean
        mean = rows.mean(0)
        before = (torch.tensor(old[k], dtype=torch.float64) - mean).norm()
        assert (vq.codebook[k] - mean).norm() < before
    assert vq.unused.tolist() == [0, 0, 1] and int(vq.calls) == 1


def test_evaluation_never_moves_the_codebook():
    vq = _quantizer([[0.0, 0.0], [1.0, 0.0]], count=[1.0, 1.0])
    state = {k: v.clone() for k, v in vq.state_dict().items()}
    z = torch.randn(4, 3, 2, dtype=torch.float64)
    vq.eval()(z)
    vq.train()(z, update=False)
    for k, v in vq.state_dict().items():
        assert torch.equal(v, state[k]), k


@pytest.mark.parametrize("ema", [True, False])
def test_a_code_unused_for_restart_after_calls_is_restarted_at_an_encoder_output(ema):
    vq = _quantizer([[0.0, 0.0], [1.0, 0.0], [50.0, 50.0]], count=[1.0, 1.0, 1.0], restart_after=3, ema=ema)
    g = torch.Generator().manual_seed(0)
    batches = [torch.rand(8, 2, generator=g, dtype=torch.float64) for _ in range(3)]
    for z in batches[:2]:
        vq.train()(z)
        assert vq.codebook[2].norm() > 30  # not yet: unused for fewer than 3 calls
    assert vq.unused[2] == 2
    vq.train()(batches[2])
    new = vq.codebook[2].detach()
    assert any(torch.equal(new, row) for row in batches[2]), "restarted at one of the batch's encodings"
    assert vq.unused[2] == 0
    if ema:  # statistics restart with it, so the next EMA step keeps the code where it was put
        assert vq.ema_count[2] == 1.0 and torch.equal(vq.ema_sum[2], new)
    # restart_after = 0 never restarts
    keep = _quantizer([[0.0, 0.0], [1.0, 0.0], [50.0, 50.0]], count=[1.0, 1.0, 1.0], restart_after=0, ema=ema)
    for z in batches * 2:
        keep.train()(z)
    assert keep.codebook[2].norm() > 30 and keep.unused[2] == 6


def test_straight_through_gradient_and_commitment_loss():
    vq = _quantizer([[0.0, 0.0], [1.0, 1.0]], count=[1.0, 1.0])
    z = torch.tensor([[[0.1, -0.2], [0.8, 1.3]]], dtype=torch.float64, requires_grad=True)  # (1, 2, 2)
    out = vq.eval()(z)
    w = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]], dtype=torch.float64)
    (out.z_q * w).sum().backward()
    assert torch.equal(z.grad, w)  # the decoder's gradient reaches z_e unchanged
    e = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    expected = 0.25 * (z.detach()[0] - e).pow(2).sum()
    assert torch.allclose(out.commitment, expected.view(1))
    assert torch.equal(out.codebook, torch.zeros(1, dtype=torch.float64))  # EMA: no codebook loss
    z.grad = None
    out.commitment.sum().backward()  # commitment pulls the encoder towards its code, not the reverse
    assert torch.allclose(z.grad, 2 * 0.25 * (z.detach() - e))


def test_codebook_loss_without_ema_trains_the_used_codes_only():
    vq = _quantizer([[0.0, 0.0], [1.0, 1.0], [9.0, 9.0]], ema=False)
    z = torch.tensor([[[0.1, -0.2], [0.8, 1.3]]], dtype=torch.float64, requires_grad=True)
    out = vq.eval()(z)
    e = vq.codebook.detach()[:2]
    assert torch.allclose(out.codebook, (z.detach()[0] - e).pow(2).sum().view(1))
    out.codebook.sum().backward()
    assert z.grad is None or torch.equal(z.grad, torch.zeros_like(z))  # sg(z_e): no gradient to the encoder
    assert torch.allclose(vq.codebook.grad[:2], 2 * (e - z.detach()[0]))
    assert torch.equal(vq.codebook.grad[2], torch.zeros(2, dtype=torch.float64))


def test_usage_and_perplexity_of_a_hand_built_assignment():
    codebook = torch.eye(4, dtype=torch.float64).tolist()
    vq = _quantizer(codebook, count=[1.0] * 4)
    z = torch.tensor(codebook, dtype=torch.float64)[[0, 0, 0, 1, 1, 1]].view(2, 3, 4)  # codes 0 and 1, equally
    out = vq.eval()(z)
    assert out.usage.item() == 0.5 and math.isclose(out.perplexity.item(), 2.0, rel_tol=1e-9)
    usage, ppl = codebook_usage(torch.tensor([3.0, 1.0, 0.0, 0.0]))
    assert usage.item() == 0.5
    assert math.isclose(ppl.item(), math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))), rel_tol=1e-6)
    assert math.isclose(codebook_usage(torch.ones(4))[1].item(), 4.0, rel_tol=1e-6)


# -- the model -------------------------------------------------------------------------------------
def test_autoencoder_stage_trains_the_autoencoder_only_and_its_bound_uses_the_uniform_prior(digits, tmp_path):
    model = build_model("vqvae", digits.info, {**TINY, "ema": False}, seed=0)
    assert model.grid == (2, 2)
    assert _optimised(model) == {id(p) for p in model.autoencoder.parameters()}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _fit(model, digits, tmp_path, steps=3)
    for n, p in model.named_parameters():
        moved = not torch.equal(before[n], p.detach())
        assert moved == n.startswith("autoencoder."), n  # the codebook parameter (ema=False) included
    x = digits.test.x[:16]
    ll = model.log_likelihood(x)
    q, params = model.autoencoder(x, update=False)
    rec = model.autoencoder.likelihood.log_prob(params, x)
    assert ll.kind == DensityKind.BOUND and "uniform" in ll.method
    assert torch.allclose(ll.values, rec - 4 * math.log(8), atol=1e-5)
    s = model.sample(6, generator=torch.Generator().manual_seed(0))  # uniform codes: valid, if poor
    assert s.shape == (6, 1, 8, 8)


def test_initialize_puts_the_codebook_on_encoder_outputs(digits):
    model = build_model("vqvae", digits.info, TINY, seed=0)
    x = digits.train.x[:32]
    model.initialize(x)
    z = model.autoencoder.encode(x).detach().reshape(-1, 4)
    for code in model.autoencoder.quantizer.codebook:
        assert (z - code).abs().amax(1).min() < 1e-6


def test_the_prior_stage_refuses_an_untrained_autoencoder(digits, tmp_path):
    model = build_model("vqvae", digits.info, {**TINY, "stage": "prior"}, seed=0)
    with pytest.raises(ConfigError, match="init-from RUN:autoencoder"):
        _fit(model, digits, tmp_path, steps=1)


def test_two_stages_freeze_the_autoencoder_and_the_learned_prior_beats_the_uniform_one(digits, tmp_path):
    ae = build_model("vqvae", digits.info, TINY, seed=0)
    _fit(ae, digits, tmp_path / "ae", steps=40)
    trained = load_run(tmp_path / "ae").model.autoencoder.state_dict()

    prior = build_model("vqvae", digits.info, {**TINY, "stage": "prior"}, seed=1)
    prior_before = {n: p.detach().clone() for n, p in prior.prior.named_parameters()}
    assert _optimised(prior) == {id(p) for p in prior.prior.parameters()}
    assert not any(p.requires_grad for p in prior.autoencoder.parameters())
    _fit(prior, digits, tmp_path / "prior", steps=60, init_from=f"{tmp_path / 'ae'}:autoencoder", lr=3e-3)
    # every autoencoder tensor -- weights, codebook, EMA statistics, counters -- is the first stage's
    for k, v in prior.autoencoder.state_dict().items():
        assert torch.equal(v, trained[k]), k
    assert all(not torch.equal(prior_before[n], p) for n, p in prior.prior.named_parameters())
    prior.train()
    assert prior.training and prior.prior.training and not prior.autoencoder.training

    # the same run reloaded scores the same; its bound is finite, a log-mass (<= 0), and lower-is-better
    # NLL is the negated bound; the learned prior beats the uniform prior on held-out codes
    loaded = load_run(tmp_path / "prior").model
    x = digits.test.x[:200]
    ll = loaded.log_likelihood(x)
    assert ll.kind == DensityKind.BOUND and "learned prior" in ll.method
    assert torch.isfinite(ll.values).all() and (ll.values <= 0).all()
    assert math.isclose(loaded.evaluate(x)["nll"], -ll.values.double().mean().item(), rel_tol=1e-6)
    uniform = ae.log_likelihood(x).values
    codes = loaded.codes(x)
    assert torch.equal(codes, ae.codes(x))  # the same autoencoder gives the same codes
    assert torch.allclose(ll.values - uniform, loaded.prior.log_prob(codes) + 4 * math.log(8), atol=1e-4)
    assert (ll.values - uniform).mean() > 2.0  # nats per example gained by learning p(z)


def test_prior_stage_samples_lie_on_the_data_lattice_and_follow_the_options(digits):
    model = build_model("vqvae", digits.info, {**TINY, "stage": "prior", "class_conditional": True}, seed=0).eval()
    assert model.conditional
    g = lambda seed: torch.Generator().manual_seed(seed)  # noqa: E731
    s = model.sample(10, generator=g(0), y=torch.full((10,), 3))
    k = s * (digits.info.levels - 1)
    assert s.shape == (10, 1, 8, 8) and torch.equal(k, k.round()) and s.min() >= 0 and s.max() <= 1
    assert torch.equal(s, model.sample(10, generator=g(0), y=torch.full((10,), 3)))
    m = model.sample(10, generator=g(1), mean=True, temperature=0.0, y=torch.full((10,), 3))
    assert torch.equal(m, model.sample(10, generator=g(2), mean=True, temperature=0.0, y=torch.full((10,), 3)))
    assert m.min() >= 0 and m.max() <= 1
    with pytest.raises(ConfigError):
        VQVAEConfig(stage="autoencoder", class_conditional=True)
    assert isinstance(model, VQVAE)
