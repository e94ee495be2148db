"""SIREN: the initialisation's activation statistics, rendering, and fitting against its baselines."""

from __future__ import annotations

import math

import pytest
import torch

from deepgen.data import DataSpec, load_dataset
from deepgen.data.signals import rows_to_values, split_targets
from deepgen.errors import ConfigError
from deepgen.models.implicit import SIREN, SIRENConfig
from deepgen.nn.siren import Siren
from deepgen.train import TrainConfig, Trainer


def _layer_stats(net, x):
    out, h = [], x
    with torch.no_grad():
        for layer in list(net)[:-1]:
            p = layer.preactivation(h)
            h = torch.sin(p)
            z = (p - p.mean()) / p.std()
            out.append((p.std().item(), z.pow(4).mean().item(), h.var().item()))
    return out


def test_initialisation_keeps_the_activation_distribution_through_depth():
    """Sitzmann et al. (2020), Sec. 3.2: first-layer outputs are arcsine-distributed (variance 1/2);
    later pre-activations are Gaussian with std near 1. Exactly, with w0^2 n c^2 / 3 = 2, the variance
    s^2 of a pre-activation fed by sin(N(0, s^2)) obeys s^2 <- 1 - exp(-2 s^2): from 1 it settles at
    0.797 (std 0.893), and sin's output variance at (1 - exp(-2 s^2)) / 2 = 0.40."""
    torch.manual_seed(0)
    net = Siren(2, 3, hidden=512, layers=6)
    stats = _layer_stats(net, torch.rand(20_000, 2) * 2 - 1)
    assert stats[0][2] == pytest.approx(0.5, abs=0.01)  # arcsine: the first layer spans many periods
    s2 = 2 * stats[0][2]  # predicted variance of layer 1's pre-activation
    for std, kurt, out_var in stats[1:]:
        assert std == pytest.approx(math.sqrt(s2), rel=0.03)
        assert kurt == pytest.approx(3.0, abs=0.15)  # Gaussian
        assert out_var == pytest.approx((1 - math.exp(-2 * s2)) / 2, rel=0.05)
        s2 = 1 - math.exp(-2 * s2)
    assert stats[-1][0] == pytest.approx(0.893, abs=0.02)  # the fixed point: no saturation, no fading


@pytest.fixture(scope="module")
def waves():
    return load_dataset(DataSpec("signal:waves", image_size=32))


def test_siren_fits_a_signal_far_better_than_relu_and_renders_what_it_fitted(waves, tmp_path):
    psnr = {}
    models = {}
    for act in ("sine", "relu", "fourier"):
        torch.manual_seed(0)
        m = SIREN(waves.info, SIRENConfig(activation=act, hidden=64, layers=3, fourier_features=32))
        cfg = TrainConfig(steps=300, batch_size=1024, lr=1e-3, progress=False, eval_every=0, ckpt_every=0, threads=1)
        Trainer(m, waves, cfg, tmp_path / act, plots=False, quiet=True).fit()
        with torch.no_grad():
            pred = m.predict(waves.train.x).clamp(0, 1)
        psnr[act] = -10 * math.log10((pred - waves.train.y[:, :3]).pow(2).mean().item())
        models[act] = (m, pred)
    # measured: sine 59 dB, Fourier features 44 dB, ReLU 18 dB after 300 full-batch steps
    assert psnr["sine"] > 45 and psnr["sine"] > psnr["fourier"] + 10 > psnr["relu"] + 10
    m, pred = models["sine"]
    img = m.render((32, 32))
    assert torch.allclose(img, rows_to_values(pred, (32, 32)), atol=1e-6)  # render = the fitted rows
    big = m.sample(2, resolution="64,64")
    assert big.shape == (2, 3, 64, 64) and torch.equal(big[0], big[1])


def test_poisson_fits_recover_the_signal_from_its_derivatives(waves, tmp_path):
    """Sitzmann et al. (2020), Sec. 4.1: supervising only the gradient (or the Laplacian) of SIREN by
    autograd recovers the image, up to what the derivatives cannot see (a constant, set from the mean)."""
    res = {}
    for fit in ("gradient", "laplacian"):
        torch.manual_seed(0)
        m = SIREN(waves.info, SIRENConfig(fit=fit, hidden=64, layers=3))
        steps = 300 if fit == "gradient" else 150
        cfg = TrainConfig(steps=steps, batch_size=1024, lr=1e-3, progress=False, eval_every=0, ckpt_every=0, threads=1)
        Trainer(m, waves, cfg, tmp_path / fit, plots=False, quiet=True).fit()
        m.eval()
        values, grad_t, lap_t = split_targets(waves.train.y, 3)
        _, grad, lap = m.derivatives(waves.train.x)
        pred, target = (grad, grad_t) if fit == "gradient" else (lap, lap_t)
        rel = ((pred - target).pow(2).mean() / target.pow(2).mean()).item()
        with torch.no_grad():
            psnr = -10 * math.log10((m.predict(waves.train.x).clamp(0, 1) - values).pow(2).mean().item())
        res[fit] = (rel, psnr)
    # measured: gradient fit 46.7 dB on the values it never saw (relative gradient error 4.5e-4)
    assert res["gradient"][0] < 5e-3 and res["gradient"][1] > 40
    # the Laplacian is matched closely, but leaves harmonic functions (ramps) free: a poorer image
    assert res["laplacian"][0] < 0.01 and res["laplacian"][1] > 14  # measured 3e-4 and 16.8 dB
    with pytest.raises(ConfigError, match="targets"):
        m.loss(waves.train.x[:4])
