"""Gradient Origin Networks: the latent is the negative gradient at the origin; second-order training;
the variational GON's bound; rendering at a finer grid."""

from __future__ import annotations

import torch

from deepgen.data import DataSpec, load_dataset
from deepgen.models.implicit import GON, VGON, GONConfig, VGONConfig
from deepgen.train import TrainConfig, Trainer


def _digits():
    return load_dataset(DataSpec("digits"))


def test_gon_latent_is_the_negative_gradient_at_the_origin():
    """Checked without autograd: central finite differences of the data-fitting loss in float64."""
    ds = _digits()
    torch.manual_seed(0)
    m = GON(ds.info, GONConfig(latent_dim=3, hidden=8, layers=2)).double()
    x = ds.train.x[:4].double()
    z = m.latent(x)
    h = 1e-5
    for i in range(3):
        e = torch.zeros(4, 3, dtype=torch.float64)
        e[:, i] = h
        with torch.no_grad():
            fd = (m.nll(x, e) - m.nll(x, -e)) / (2 * h) / ds.info.dim  # the per-dimension NLL's gradient
        assert torch.allclose(z[:, i], -fd, rtol=1e-5, atol=1e-7)


def test_gon_training_differentiates_through_the_inner_gradient():
    ds = _digits()
    torch.manual_seed(0)
    m = GON(ds.info, GONConfig(latent_dim=3, hidden=8, layers=2))
    x = ds.train.x[:8]
    params = list(m.decoder.parameters())
    full = torch.autograd.grad(m.loss(x)["loss"], params)
    z = m.latent(x).detach()  # the same latents, but the decoder's effect on them cut off
    first = torch.autograd.grad(m.nll(x, z).mean() / ds.info.dim, params)
    diff = sum((a - b).abs().sum() for a, b in zip(full, first))
    assert diff > 1e-3 * sum(a.abs().sum() for a in full)  # the second-order term is there


def test_gon_learns_and_renders_at_twice_the_resolution(tmp_path):
    ds = _digits()
    torch.manual_seed(0)
    m = GON(ds.info, GONConfig(latent_dim=8, hidden=32, layers=2))  # the paper's w0 = 30
    x = ds.test.x[:64]
    before = m.evaluate(x)["reconstruction_nats"]
    cfg = TrainConfig(steps=300, batch_size=64, lr=1e-3, progress=False, eval_every=0, ckpt_every=0, threads=1)
    Trainer(m, ds, cfg, tmp_path, plots=False, quiet=True).fit()
    after = m.evaluate(x)["reconstruction_nats"]
    assert after < before - 40  # nats per 64-pixel image; measured 141.4 -> 82.0
    s = m.sample(3, generator=torch.Generator().manual_seed(0), resolution="16,16")
    assert s.shape == (3, 1, 16, 16) and torch.equal(s * 16, (s * 16).round())  # on the 17-level lattice
    assert m.z_count.item() == 300 * 64  # latent moments gathered for sampling


def test_vgon_bound_lies_below_its_importance_sampled_likelihood():
    ds = _digits()
    torch.manual_seed(0)
    m = VGON(ds.info, VGONConfig(**VGON.test_options)).eval()
    x = ds.test.x[:16]
    elbo = m.elbo(x)
    est, _ = m.log_prob_estimate(x, k=64)
    assert torch.isfinite(elbo).all() and elbo.mean() <= est.mean() + 1e-3
    mu1, _ = m.posterior(x)
    mu2, _ = m.posterior(x)
    assert torch.equal(mu1, mu2)  # q(z | x) is a deterministic function of x
    big = m.sample(2, generator=torch.Generator().manual_seed(0), resolution="16,16")
    assert big.shape == (2, 1, 16, 16)


def test_the_autoencoder_baseline_shares_the_decoder_and_encodes_with_a_network():
    ds = _digits()
    torch.manual_seed(0)
    gon = GON(ds.info, GONConfig(latent_dim=3, hidden=8, layers=2))
    ae = GON(ds.info, GONConfig(latent_dim=3, hidden=8, layers=2, encoder="mlp", encoder_hidden=16))
    dec = sum(p.numel() for p in gon.parameters())
    assert sum(p.numel() for p in ae.decoder.parameters()) == dec  # the same implicit decoder
    assert sum(p.numel() for p in ae.parameters()) == dec + 64 * 16 + 16 + 16 * 3 + 3
    x = ds.train.x[:8]
    assert torch.equal(ae.latent(x), ae.encoder(x))
    loss = ae.loss(x)["loss"]
    assert all(p.grad is None for p in ae.parameters())
    loss.backward()
    assert ae.encoder[1].weight.grad.abs().sum() > 0  # the encoder is trained by the reconstruction
