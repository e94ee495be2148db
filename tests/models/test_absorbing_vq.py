"""Absorbing diffusion over VQ codes: the reverse process and its evidence lower bound against exact
enumeration on a tiny vocabulary, and the two-stage hybrid on digits."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from deepgen.errors import ConfigError
from deepgen.models.base import DensityKind
from deepgen.models.hybrid.absorbing import AbsorbingPrior
from deepgen.train import TrainConfig, Trainer, build_model, load_run

L, K = 3, 2  # three tokens of two values: every path of the reverse process can be enumerated


def _prior(seed=0):
    torch.manual_seed(seed)
    net = AbsorbingPrior(K, L, d_model=8, n_layers=1, n_heads=2).eval()
    with torch.no_grad():  # a sharper network than its initialisation, so that the checks can fail
        for p in net.parameters():
            p.mul_(8 if p.dim() > 1 else 1)
    return net


def _probs(net, z_t):
    with torch.no_grad():
        return torch.softmax(net(torch.tensor([z_t])).double(), -1)[0]  # (L, K)


def exact_log_p(net, z0) -> float:
    """log p(z0) of the reverse process with T = L steps, summing over every unmasking path."""
    m = net.mask_token

    def prob(z_t, t):
        masked = [i for i in range(L) if z_t[i] == m]
        if t == 0:
            return 1.0 if not masked else 0.0
        p_t, total = _probs(net, z_t), 0.0
        for r in range(len(masked) + 1):
            for reveal in itertools.combinations(masked, r):
                w = (1 / t) ** r * (1 - 1 / t) ** (len(masked) - r)
                if w == 0:
                    continue
                w *= math.prod(float(p_t[i, z0[i]]) for i in reveal)
                nxt = [z0[i] if i in reveal else z_t[i] for i in range(L)]
                total += w * prob(nxt, t - 1)
        return total

    return math.log(prob([m] * L, L))


def exact_bound(net, z0) -> float:
    """sum_t (1/t) E_q(z_t|z0) [sum over masked i of log p(z0^i | z_t)], by enumerating the masks."""
    total = 0.0
    for t in range(1, L + 1):
        for mask in itertools.product([False, True], repeat=L):
            w = math.prod(t / L if mk else 1 - t / L for mk in mask)
            if w == 0:
                continue
            z_t = [net.mask_token if mk else z0[i] for i, mk in enumerate(mask)]
            p_t = _probs(net, z_t)
            total += w / t * sum(math.log(float(p_t[i, z0[i]])) for i in range(L) if mask[i])
    return total


def test_the_reverse_process_is_a_distribution_and_the_bound_is_below_it():
    net = _prior()
    seqs = list(itertools.product(range(K), repeat=L))
    log_p = {z: exact_log_p(net, z) for z in seqs}
    assert sum(math.exp(v) for v in log_p.values()) == pytest.approx(1.0, abs=1e-9)
    gaps = [log_p[z] - exact_bound(net, z) for z in seqs]
    assert min(gaps) >= -1e-9 and max(gaps) > 1e-3  # a bound, and not an identity


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_log_prob_is_an_unbiased_estimate_of_the_bound(mode):
    net = _prior()
    z0 = (1, 0, 1)
    want = exact_bound(net, z0)
    net.train(mode == "train")
    torch.manual_seed(1)
    draws = net.log_prob(torch.tensor([z0] * 20000)).double()
    se = draws.std() / math.sqrt(len(draws))
    assert abs(draws.mean().item() - want) < 4.5 * se.item() + 1e-6, (draws.mean().item(), want, se.item())


def test_generate_samples_the_reverse_process():
    net = _prior()
    n = 20000
    z = net.generate(n, generator=torch.Generator().manual_seed(0))
    assert z.shape == (n, L) and z.min() >= 0 and z.max() < K  # nothing left masked
    for seq in itertools.product(range(K), repeat=L):
        p = math.exp(exact_log_p(net, seq))
        freq = (z == torch.tensor(seq)).all(1).double().mean().item()
        assert abs(freq - p) < 4.5 * math.sqrt(p * (1 - p) / n) + 1e-9, (seq, freq, p)
    # one step reveals everything at once from the all-mask input: the product of its marginals
    one = net.generate(n, steps=1, generator=torch.Generator().manual_seed(1))
    marg = _probs(net, [net.mask_token] * L)[:, 1]
    assert ((one.double().mean(0) - marg).abs() < 4.5 * (marg * (1 - marg) / n).sqrt()).all()
    with pytest.raises(ConfigError, match="steps must be in 1..3"):
        net.generate(2, steps=4)


TINY = {"num_codes": 8, "code_dim": 4, "channels": (8, 16), "prior_d_model": 16, "prior_layers": 1, "prior_heads": 2}


def _fit(model, data, out, steps, init_from=None):
    cfg = TrainConfig(steps=steps, batch_size=64, seed=0, progress=False, eval_every=0, ckpt_every=0, threads=1)
    return Trainer(model, data, cfg, out, plots=False, quiet=True, init_from=init_from).fit()


def test_two_stages_on_digits(digits, tmp_path):
    ae = build_model("absorbing-vq", digits.info, TINY, seed=0)
    _fit(ae, digits, tmp_path / "ae", steps=30)
    trained = load_run(tmp_path / "ae").model.autoencoder.state_dict()
    model = build_model("absorbing-vq", digits.info, {**TINY, "stage": "prior"}, seed=1)
    assert isinstance(model.prior, AbsorbingPrior) and model.prior.steps == 4  # a 2 x 2 grid of codes
    _fit(model, digits, tmp_path / "prior", steps=30, init_from=f"{tmp_path / 'ae'}:autoencoder")
    for k, v in model.autoencoder.state_dict().items():
        assert torch.equal(v, trained[k]), k

    loaded = load_run(tmp_path / "prior").model
    x = digits.test.x[:50]
    ll = loaded.log_likelihood(x)
    assert ll.kind == DensityKind.BOUND and "absorbing-diffusion ELBO" in ll.method
    assert torch.isfinite(ll.values).all() and (ll.values <= 0).all()
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    s = loaded.sample(6, generator=g(0), steps=2)
    k = s * (digits.info.levels - 1)
    assert s.shape == (6, 1, 8, 8) and torch.equal(k, k.round())
    assert torch.equal(s, loaded.sample(6, generator=g(0), steps=2))
    assert "2 steps" in loaded.describe_sampling(loaded.sample_options(steps=2))


def test_a_class_conditional_prior_takes_labels(digits):
    model = build_model("absorbing-vq", digits.info, {**TINY, "stage": "prior", "class_conditional": True}, seed=0)
    model.eval()
    y = torch.full((5,), 7)
    s = model.sample(5, generator=torch.Generator().manual_seed(0), y=y)
    assert s.shape == (5, 1, 8, 8)
    assert model.log_likelihood(digits.test.x[:5], y=digits.test.y[:5]).values.shape == (5,)
    with pytest.raises(ConfigError, match="pass labels"):
        model.prior(torch.zeros(2, 4, dtype=torch.long))


def test_the_reweighted_objective_weights_each_step_by_its_visible_share():
    net = _prior().train()
    z0 = torch.tensor([[1, 0, 1]] * 4)
    torch.manual_seed(3)
    t, nll = net.training_terms(z0)
    assert t.min() >= 1 and t.max() <= L and (nll >= 0).all()
    want = (1 - t.double() / (L + 1)) * nll.double()  # 3/4, 2/4, 1/4 for t = 1, 2, 3: never 0
    assert torch.allclose(net.reweighted_nll(t, nll).double(), want)
    torch.manual_seed(3)  # the same draw gives training mode's ELBO estimate
    assert torch.allclose(net.log_prob(z0).double(), -L * nll.double() / t)


def test_prior_loss_reweighted_trains_and_logs_the_bound(digits, tmp_path):
    ae = build_model("absorbing-vq", digits.info, TINY, seed=0)
    _fit(ae, digits, tmp_path / "ae", steps=20)
    opts = {**TINY, "stage": "prior", "prior_loss": "reweighted"}
    model = build_model("absorbing-vq", digits.info, opts, seed=1)
    before = [p.detach().clone() for p in model.prior.parameters()]
    _fit(model, digits, tmp_path / "prior", steps=20, init_from=f"{tmp_path / 'ae'}:autoencoder")
    assert any(not torch.equal(a, b) for a, b in zip(before, model.prior.parameters()))
    model.train()
    out = model.loss(digits.train.x[:64])
    # the logged prior_nll is the ELBO estimate (T/t-weighted), the loss the smaller reweighted one
    assert out["prior_nll"] > 0 and out["loss"] * digits.info.dim < out["prior_nll"]
    assert load_run(tmp_path / "prior").model.config.prior_loss == "reweighted"
    with pytest.raises(ConfigError, match="prior_loss: 'mlm' is not one of"):
        build_model("absorbing-vq", digits.info, {**TINY, "prior_loss": "mlm"})
