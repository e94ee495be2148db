"""IWAE, and the likelihood numbers of latent-variable models checked against exact enumeration.

A VAE with one latent dimension on 10-bit vectors has all of its numbers computable: log p(x) by
quadrature over z for each of the 1024 states, and the ELBO by Gauss-Hermite quadrature under
q(z|x). Against these: the per-example ELBO of K draws (``method="elbo"``) and its standard
error, the importance-sampled estimate, and the IWAE bound L_k increasing in k towards log p(x)
(Burda et al., 2016, arXiv:1509.00519, theorem 1).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepgen.data import DataInfo
from deepgen.distributions import kl_normal_standard
from deepgen.errors import ConfigError
from deepgen.models.base import DensityKind
from deepgen.models.density import LatentVariableModel
from deepgen.models.vae.iwae import IWAE, IWAEConfig
from deepgen.models.vae.vae import VAE, VAEConfig

BITS = DataInfo("bits", (10,), 2)
#: all 2^10 binary vectors, (1024, 10)
STATES = ((torch.arange(1024).unsqueeze(1) >> torch.arange(10)) & 1).double()


def _bits_batch(g: torch.Generator, n: int, protos: torch.Tensor) -> torch.Tensor:
    """Four prototype patterns, each bit flipped with probability 0.1."""
    idx = torch.randint(0, len(protos), (n,), generator=g)
    flip = (torch.rand(n, 10, generator=g) < 0.1).float()
    return (protos[idx] + flip) % 2


@pytest.fixture(scope="module")
def bits_vae():
    """A bernoulli VAE (latent_dim 1) trained briefly on the bit patterns, in float64, with the exact
    log p(x) and ELBO of every state (quadrature)."""
    torch.manual_seed(0)
    model = VAE(BITS, VAEConfig(latent_dim=1, hidden=(16,), decoder="bernoulli"))
    g = torch.Generator().manual_seed(0)
    protos = torch.randint(0, 2, (4, 10), generator=g).float()
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(120):
        loss = model.loss(_bits_batch(g, 64, protos))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model = model.double().eval()
    with torch.no_grad():
        # log p(x) = log int p(x|z) N(z; 0, 1) dz on a fine grid (the integrand is smooth)
        zg = torch.linspace(-8, 8, 2001, dtype=torch.float64)
        params = model.decoder(zg.unsqueeze(1))
        log_px_z = torch.stack([model.likelihood.log_prob(params, x.expand(len(zg), 10)) for x in STATES])
        log_prior = -0.5 * zg**2 - 0.5 * math.log(2 * math.pi)
        log_p = torch.logsumexp(log_px_z + log_prior, 1) + torch.log(zg[1] - zg[0])
        # ELBO = E_q[log p(x|z)] - KL, the expectation by 60-node Gauss-Hermite quadrature
        t, w = np.polynomial.hermite_e.hermegauss(60)
        t, w = torch.tensor(t), torch.tensor(w) / math.sqrt(2 * math.pi)
        mu, logvar = model.posterior(STATES)
        z = mu + torch.exp(0.5 * logvar) * t  # (1024, 60)
        rec = torch.stack([model.decoder_log_prob(STATES, z[:, i : i + 1]) for i in range(len(t))], 1)
        elbo = (rec * w).sum(1) - kl_normal_standard(mu, logvar)
    # the quadratures themselves: a normalised p(x), and the ELBO strictly below it
    assert abs(log_p.exp().sum().item() - 1) < 1e-9
    assert (elbo < log_p).all() and (log_p - elbo).mean() > 0.1  # a posterior gap worth resolving
    return model, log_p, elbo


def test_per_example_elbo_of_k_draws_is_a_bound_with_its_standard_error(bits_vae):
    """method="elbo": the mean of K draws per example, unbiased for the exact ELBO, its stderr
    calibrated, and exp(ELBO_K) summed over all 1024 states stays <= 1 (the one-sample ELBO of
    the default number does not: it is one draw, not a per-example bound)."""
    model, log_p, elbo = bits_vae
    torch.manual_seed(1)
    with torch.no_grad():
        ll = model.log_likelihood(STATES, k=400, method="elbo")
    assert ll.kind == DensityKind.BOUND and ll.method == "ELBO, K=400"
    assert ll.values.shape == ll.stderr.shape == (1024,)
    assert torch.isfinite(ll.stderr).all() and (ll.stderr > 0).all()
    z = (ll.values - elbo) / ll.stderr  # an importance-sampled value would sit ~9 errors above
    assert abs(z.mean().item()) < 0.15 and 0.85 < z.std().item() < 1.15 and z.abs().max() < 5
    total = ll.values.exp().sum()
    tol = 4 * (ll.values.mul(2).exp() * ll.stderr.pow(2)).sum().sqrt()  # delta method on the sum
    assert total <= 1 + tol and tol < 0.05
    assert total < log_p.exp().sum() - 0.1  # the bound's gap is resolved, not buried in noise
    # the VAE's memory-bounded version is the generic estimator: the same draws give the same numbers
    torch.manual_seed(2)
    with torch.no_grad():
        generic = LatentVariableModel.elbo_estimate(model, STATES[:64], 250, chunk=100)
    torch.manual_seed(2)
    with torch.no_grad():
        bounded = model.elbo_estimate(STATES[:64], 250, chunk=100)
    assert all(torch.allclose(a, b) for a, b in zip(generic, bounded))


def test_default_numbers_are_unchanged(bits_vae):
    model, log_p, _ = bits_vae
    x = STATES[:16]
    with torch.no_grad():
        one = model.log_likelihood(x)
        one_k = model.log_likelihood(x, k=1, method="elbo")
        default_k = model.log_likelihood(x, method="elbo")
        est = model.log_likelihood(x, k=10)
    assert one.method == "ELBO" and one.stderr is None and one.kind == DensityKind.BOUND
    assert one_k.method == "ELBO, K=1" and one_k.stderr is None
    assert default_k.method == f"ELBO, K={model.eval_k}"
    assert est.kind == DensityKind.ESTIMATE and est.method == "importance sampling, K=10"


def test_importance_sampling_converges_to_the_exact_log_likelihood(bits_vae):
    model, log_p, _ = bits_vae
    torch.manual_seed(3)
    with torch.no_grad():
        est = model.log_likelihood(STATES, k=2000)
    z = (est.values - log_p) / est.stderr
    assert abs((est.values - log_p).mean().item()) < 0.01
    assert 0.8 < z.std().item() < 1.25 and (z.abs() < 4).float().mean() > 0.99


def test_iwae_bound_increases_with_k_towards_log_p(bits_vae):
    """E[L_1] < E[L_4] < E[L_32] < log p(x), averaged over all states and 8 repeats, each gap by
    more than 4 standard errors of the paired differences."""
    model, log_p, _ = bits_vae
    torch.manual_seed(4)
    bounds = {}
    with torch.no_grad():
        for k in (1, 4, 32):
            reps = [torch.logsumexp(model.log_importance_weights(STATES, k), 1) - math.log(k) for _ in range(8)]
            bounds[k] = torch.stack(reps).mean(0)  # (1024,) per-state average over repeats
    for lo, hi in ((bounds[1], bounds[4]), (bounds[4], bounds[32]), (bounds[32], log_p)):
        d = hi - lo
        assert d.mean() > 4 * d.std() / math.sqrt(len(d)), (d.mean().item(), d.std().item())
    assert (log_p - bounds[32]).mean() < 0.25 * (log_p - bounds[1]).mean()  # L_k -> log p(x)


def test_iwae_loss_is_the_k_sample_bound():
    torch.manual_seed(0)
    model = IWAE(BITS, IWAEConfig(latent_dim=2, hidden=(16,), k=6))
    x = (torch.rand(32, 10) < 0.5).float()
    torch.manual_seed(5)
    out = model.loss(x)
    torch.manual_seed(5)  # the same draws: encode is deterministic, then one randn for the k codes
    with torch.no_grad():
        lw = model.log_importance_weights(x, 6)
    bound = torch.logsumexp(lw, 1) - math.log(6)
    assert torch.allclose(out["loss"], -bound.mean() / 10, atol=1e-6)
    assert torch.allclose(out["iw_bound"], bound.mean(), atol=1e-5)
    assert torch.allclose(out["elbo"], lw.mean(), atol=1e-5)
    assert out["iw_bound"] > out["elbo"]  # log-mean-exp >= mean for the same weights
    assert 1 <= out["ess"] <= 6
    out["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    one = IWAE(BITS, IWAEConfig(latent_dim=2, hidden=(16,), k=1)).loss(x)
    assert torch.allclose(one["iw_bound"], one["elbo"]) and one["ess"] == 1


def test_iwae_trains_on_a_tighter_bound_than_its_elbo():
    """After a few steps, the IWAE's importance-sampled log p(x) beats the ELBO by more than a VAE's
    of the same networks does: q(z|x) learns to be a proposal, not a tight fit (Burda et al., sec. 5)."""
    g = torch.Generator().manual_seed(0)
    protos = torch.randint(0, 2, (4, 10), generator=g).float()
    data = _bits_batch(g, 512, protos)
    gaps = {}
    for name, cls, cfg in (("vae", VAE, VAEConfig), ("iwae", IWAE, IWAEConfig)):
        torch.manual_seed(0)
        extra = {"k": 20} if cls is IWAE else {}
        model = cls(BITS, cfg(latent_dim=1, hidden=(16,), decoder="bernoulli", **extra))
        opt = torch.optim.Adam(model.parameters(), lr=0.03)
        for i in range(100):
            loss = model.loss(data[(i % 8) * 64 : (i % 8 + 1) * 64])["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        torch.manual_seed(1)
        with torch.no_grad():
            elbo = model.log_likelihood(data, method="elbo", k=50).values
            est = model.log_likelihood(data, k=500).values
        gaps[name] = (est - elbo).mean().item()
    assert gaps["iwae"] > gaps["vae"] + 0.05, gaps


def test_iwae_options_are_checked():
    from deepgen.config import from_dict

    assert from_dict(IWAEConfig, {"k": "50"}).k == 50  # strings from -o k=50
    with pytest.raises(ConfigError, match="k must be"):
        IWAEConfig(k=0)
    for bad in ({"beta": 2.0}, {"kl_warmup": 10}, {"free_bits": 0.1}):
        with pytest.raises(ConfigError, match="use the vae model") as e:
            IWAEConfig(**bad)
        assert "\n" not in str(e.value)
