"""NeRF: the volume-rendering quadrature against the exact integral, hierarchical sampling, and a
short fit of the synthetic scene."""

from __future__ import annotations

import math

import pytest
import torch

from deepgen.data import DataSpec, load_dataset
from deepgen.data.scenes import SPHERES_SCENE, camera_rays, render_shapes, ring_poses, shape_fields
from deepgen.evaluate.fidelity import fidelity_metrics, novel_views
from deepgen.models.implicit import NeRF, NeRFConfig
from deepgen.models.implicit.nerf import composite, positional_encoding, sample_pdf
from deepgen.plots import save_scene_views
from deepgen.train import TrainConfig, Trainer


def _fields(pts):
    """The spheres scene's exact density and colour at points (..., 3)."""
    return shape_fields(SPHERES_SCENE, pts)


def test_quadrature_converges_to_the_exact_volume_rendering_integral():
    o, d = camera_rays(ring_poses(2), 8, 8, (10.0, 10.0, 4.0, 4.0))
    o, d = o.reshape(-1, 3).double(), d.reshape(-1, 3).double()
    near, far = 2.0, 6.0
    exact, _ = render_shapes(SPHERES_SCENE, o, d, near, far)
    errors = []
    for n in (16, 64, 256, 1024, 4096):  # O(1/n) at the shapes' surfaces, where the density jumps
        edges = torch.linspace(near, far, n + 1, dtype=torch.float64)
        t = (0.5 * (edges[1:] + edges[:-1])).expand(len(o), n)
        sigma, rgb = _fields(o[:, None] + t[..., None] * d[:, None])
        colour, w = composite(sigma, rgb, t, far)
        errors.append((colour - exact).abs().max().item())
        assert torch.all(w >= 0) and torch.all(w.sum(1) <= 1 + 1e-9)
    assert all(b < a for a, b in zip(errors, errors[1:])) and errors[-1] < 0.01, errors
    assert exact.std() > 0.05  # the rays see the shapes, not only the background


def test_positional_encoding_and_inverse_transform_sampling():
    p = torch.tensor([[0.25, -0.5, 1.0]])
    g = positional_encoding(p, 2)
    assert g.shape == (1, 3 * 5)
    assert torch.allclose(g[0, 3:6], torch.sin(math.pi * p[0])) and torch.allclose(
        g[0, 9:12], torch.cos(math.pi * p[0])
    )
    # all the weight in bin 2 of 4 on [0, 4]: every fine sample lands in [2, 3)
    edges = torch.linspace(0, 4, 5).expand(3, 5)
    w = torch.tensor([[0.0, 0.0, 1.0, 0.0]]).expand(3, 4)
    t = sample_pdf(edges, w, 200, deterministic=False, generator=torch.Generator().manual_seed(0))
    inside = ((t >= 2) & (t < 3)).float().mean()
    assert inside > 0.99  # 1e-5 per bin keeps a sliver elsewhere
    td = sample_pdf(edges, torch.ones(3, 4), 8, deterministic=True)
    assert torch.allclose(td[0], torch.linspace(0.25, 3.75, 8), atol=1e-4)  # uniform pdf: evenly spaced quantiles


@pytest.mark.parametrize("fine", [0, 8])
def test_nerf_fits_the_synthetic_scene_above_the_background_guess(fine, tmp_path):
    ds = load_dataset(DataSpec("scene:spheres", image_size=8))
    torch.manual_seed(0)
    m = NeRF(ds.info, NeRFConfig(hidden=32, layers=3, pos_freqs=4, dir_freqs=2, coarse=16, fine=fine))
    cfg = TrainConfig(steps=200, batch_size=512, lr=5e-3, progress=False, eval_every=0, ckpt_every=0, threads=1)
    Trainer(m, ds, cfg, tmp_path, plots=False, quiet=True).fit()
    with torch.no_grad():
        pred = m.predict(ds.test.x)
    mse = (pred - ds.test.y).pow(2).mean().item()
    white = (1 - ds.test.y).pow(2).mean().item()  # predicting the background everywhere
    assert mse < 0.5 * white, (mse, white)
    views = m.sample(2, size=6)
    assert views.shape == (2, 3, 6, 6) and views.min() >= 0 and views.max() <= 1
    if fine:  # novel views beside the truth: the same cameras for both, scored and drawn
        m.eval()
        views, truth = novel_views(m, ds, 6, elevation=20.0)
        assert torch.allclose(truth[0], ds.container.images[0], atol=1e-5)  # orbit view 0 = training view 0
        assert torch.allclose(views[0], m.render_view(ds.container.poses[0], 8), atol=1e-5)
        fid = fidelity_metrics(m, ds)
        assert fid["psnr_novel"]["n"] == 8 and fid["psnr_novel"]["value"] > 10 * math.log10(1 / white)
        assert save_scene_views(m, ds, tmp_path / "views.png").stat().st_size > 0
