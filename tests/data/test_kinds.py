"""Data kinds beyond i.i.d. examples: signals, scenes and two unpaired domains."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from deepgen.data import DataSpec, dataset_table, load_dataset, load_eval_split, validate_tensor
from deepgen.data.scenes import (
    SPHERES_SCENE,
    Shape,
    camera_rays,
    look_at,
    quadrature_render,
    render_shapes,
    ring_poses,
    shape_fields,
)
from deepgen.data.signals import (
    coordinate_grid,
    field_derivatives,
    grid_derivatives,
    named_signal,
    rows_to_values,
    values_to_rows,
    waves_field,
)
from deepgen.errors import DataError


def test_named_kinds_are_listed_and_load():
    names = {r["name"] for r in dataset_table()}
    for name, kind in [("signal:china", "signal"), ("scene:spheres", "scene"), ("domains:digits-inverted", "domains")]:
        assert name in names
        assert load_dataset(name).info.kind == kind
    with pytest.raises(DataError, match="float targets"):
        load_dataset(DataSpec("signal:waves", binarize="dynamic"))


def test_coordinate_grid_uses_pixel_centres():
    g = coordinate_grid((2, 4))
    assert g.shape == (8, 2)
    assert torch.allclose(g[:4, 0], torch.full((4,), -0.5)) and torch.allclose(
        g[:4, 1], torch.tensor([-0.75, -0.25, 0.25, 0.75])
    )
    hi = coordinate_grid((4, 8))
    assert hi.abs().max() < 1 and not (torch.cdist(g, hi).min(1).values < 1e-6).any()  # no shared point


def test_analytic_signal_at_two_resolutions():
    ds = named_signal("waves", 16).to_dataset()
    assert ds.info.kind == "signal" and ds.info.grid == (16, 16) and ds.info.row_shape == (2,)
    # targets: 3 values, 3 x 2 gradient components, 3 Laplacians
    assert ds.train.x.shape == (256, 2) and ds.train.y.shape == (256, 12) and ds.test.x.shape == (1024, 2)
    for split in (ds.train, ds.test):  # exact values at both resolutions
        assert torch.allclose(split.y[:, :3], waves_field(split.x), atol=1e-6)
    values = ds.train.y[:, :3]
    img = rows_to_values(values, (16, 16))
    assert img.shape == (3, 16, 16) and torch.equal(values_to_rows(img), values)
    assert torch.equal(img, ds.container.values)
    validate_tensor(ds.train.x[:4], ds.info)
    chirp = load_dataset(DataSpec("signal:chirp", image_size=32))
    assert chirp.train.x.shape == (32, 1) and chirp.info.grid == (32,) and chirp.test.x.shape == (64, 1)


def test_photo_signal_values_and_resolutions():
    ds = load_dataset(DataSpec("signal:flower", image_size=24))
    assert ds.train.y.shape == (24 * 24, 12) and ds.test.y.shape == (48 * 48, 12)
    v = ds.train.y[:, :3]
    assert 0 <= float(v.min()) and float(v.max()) <= 1 and float(v.std()) > 0.05
    # the 2x evaluation grid is the same photo: averaging 2x2 blocks comes close to the native image
    lo = rows_to_values(v, (24, 24))
    hi = rows_to_values(ds.test.y[:, :3], (48, 48))
    assert (torch.nn.functional.avg_pool2d(hi[None], 2)[0] - lo).abs().mean() < 0.03


def test_finite_difference_derivatives_converge_to_the_exact_ones():
    """A photo's derivative targets are Sobel / 5-point differences; on the analytic field, where autograd
    gives the exact derivatives, their error falls as the grid is refined (second order)."""
    errors = []
    for n in (32, 64, 128):
        coords = coordinate_grid((n, n))
        values = rows_to_values(waves_field(coords), (n, n))
        grad, lap = (values_to_rows(t) for t in grid_derivatives(values))
        g_exact, l_exact = field_derivatives(waves_field, coords)
        inner = (coords.abs() < 0.9).all(1)  # mirrored borders are first-order there: compare the inside
        errors.append(
            tuple(((a - b)[inner].norm() / b[inner].norm()).item() for a, b in [(grad, g_exact), (lap, l_exact)])
        )
    for (g0, l0), (g1, l1) in zip(errors, errors[1:]):
        assert g1 < g0 / 3 and l1 < l0 / 3  # second order: 4x smaller per halving of h
    assert errors[-1][0] < 0.01 and errors[-1][1] < 0.02
    # channel-major layout: column k d + j is d value_k / d c_j, here checked on a ramp in one channel
    ramp = torch.stack([coordinate_grid((8, 8))[:, 1].reshape(8, 8) * 3, torch.zeros(8, 8)])
    grad, lap = grid_derivatives(ramp)
    assert torch.allclose(grad[1, 1:-1, 1:-1], torch.tensor(3.0)) and grad[[0, 2, 3]].abs().max() < 1e-6
    assert lap[:, 1:-1, 1:-1].abs().max() < 1e-4


def test_one_image_file_is_a_signal(tmp_path):
    rgb = (np.arange(6 * 10 * 3) % 256).astype(np.uint8).reshape(6, 10, 3)
    Image.fromarray(rgb).save(tmp_path / "pic.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.png")
    ds = load_dataset(DataSpec(str(tmp_path / "pic.png")))
    assert ds.info.kind == "signal" and ds.info.grid == (6, 10) and ds.info.channels == 3
    assert torch.equal(rows_to_values(ds.train.y[:, :3], (6, 10)) * 255, torch.from_numpy(rgb).permute(2, 0, 1).float())
    assert ds.test.x.shape == (12 * 20, 2)  # evaluated at twice the resolution
    grey = load_dataset(DataSpec(str(tmp_path / "grey.png"), image_size=5))
    assert grey.info.channels == 1 and grey.info.grid == (3, 5)  # the longer side is --image-size
    split, info = load_eval_split(DataSpec(str(tmp_path / "pic.png")))
    assert info.kind == "signal" and len(split) == 12 * 20
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(DataError, match="not an image"):
        load_dataset(DataSpec(str(tmp_path / "bad.png")))


def test_camera_rays_geometry():
    eye = torch.tensor([3.0, -2.0, 1.5])
    pose = look_at(eye)
    assert torch.allclose(pose[:3, :3] @ pose[:3, :3].T, torch.eye(3, dtype=torch.float64), atol=1e-12)
    o, d = camera_rays(pose, 33, 35, (30.0, 30.0, 17.5, 16.5))  # odd sizes: a pixel sits on the axis
    assert o.shape == d.shape == (1, 33, 35, 3)
    assert torch.allclose(d.norm(dim=-1), torch.ones(1, 33, 35))
    oc, dc = o[0, 16, 17].double(), d[0, 16, 17].double()
    assert torch.allclose(dc, -eye.double() / eye.double().norm(), atol=1e-6)  # looks at the origin
    assert torch.linalg.cross(dc, -oc).norm() < 1e-5  # the centre ray passes through the origin
    # the top row looks up (+z here), the right column looks to the camera's right
    assert d[0, 0, 17, 2] > dc[2] and torch.dot(d[0, 16, -1].double() - dc, pose[:3, 0]) > 0


def test_rendering_a_sphere_gives_the_analytic_transmittance():
    sigma, r = 1.7, 0.8
    ball = (Shape("sphere", (0.0, 0.0, 0.0), (r,), sigma, (0.2, 0.4, 0.6)),)
    o, d = torch.tensor([[0.0, 0.0, 4.0]]), torch.tensor([[0.0, 0.0, -1.0]])
    rgb, t_far = render_shapes(ball, o, d, near=2.0, far=6.0, background=1.0)
    t = math.exp(-sigma * 2 * r)
    assert t_far.item() == pytest.approx(t, rel=1e-12)
    assert torch.allclose(rgb[0], (1 - t) * torch.tensor([0.2, 0.4, 0.6], dtype=torch.float64) + t)
    miss, t_miss = render_shapes(ball, o + torch.tensor([[2.0, 0.0, 0.0]]), d, 2.0, 6.0)
    assert t_miss.item() == 1.0 and torch.allclose(miss, torch.ones(1, 3, dtype=torch.float64))


def test_exact_renderer_agrees_with_quadrature():
    poses = ring_poses(2)
    o, d = camera_rays(poses, 6, 6, (8.0, 8.0, 3.0, 3.0))
    o, d = o.reshape(-1, 3).double(), d.reshape(-1, 3).double()
    exact, _ = render_shapes(SPHERES_SCENE, o, d, 2.0, 6.0)

    def fields(pts):
        return shape_fields(SPHERES_SCENE, pts)

    approx = quadrature_render(lambda p: fields(p)[0], lambda p: fields(p)[1], o, d, 2.0, 6.0, n_samples=4000)
    assert (approx - exact).abs().max() < 1e-2 and (exact.std() > 0.05)


def test_scene_dataset_is_rays_and_colours():
    ds = load_dataset(DataSpec("scene:spheres", image_size=16))
    scene, info = ds.container, ds.info
    n_train, n_test = len(scene.train_views), len(scene.test_views)
    assert (n_train, n_test) == (25, 5) and not set(scene.train_views) & set(scene.test_views)
    assert ds.train.x.shape == (n_train * 256, 6) and ds.train.y.shape == (n_train * 256, 3)
    assert ds.test.x.shape == (n_test * 256, 6) and info.bounds == (2.0, 6.0) and info.camera[2] == 8.0
    view = scene.train_views[3]  # rows of a training view, back into an image
    rows = ds.train.y[3 * 256 : 4 * 256]
    assert torch.equal(rows.reshape(16, 16, 3).permute(2, 0, 1), scene.images[view])
    hi = scene.render(scene.poses[:1], (32, 32))  # ground truth at twice the resolution
    assert hi.shape == (1, 3, 32, 32) and (torch.nn.functional.avg_pool2d(hi, 2) - scene.images[:1]).abs().mean() < 0.05
    o, d = scene.rays(scene.poses[:1], (32, 32))
    assert o.shape == (1, 32, 32, 3) and torch.allclose(d.norm(dim=-1), torch.ones(1, 32, 32))


def test_domains_are_unpaired_and_batches_independent():
    ds = load_dataset("domains:digits-inverted")
    pair, info = ds.container, ds.info
    assert info.kind == "domains" and info.domain_b.shape == (1, 8, 8) and ds.train.y is None
    a, b = pair.a.train.storage.flatten(1), (16 - pair.b.train.storage).flatten(1)
    assert len(a) + len(b) == 1294  # disjoint halves of the digits training split
    matches = (a[:, None, :] == b[None, :, :]).all(-1).sum().item()
    assert matches < 5  # no B image is the inverted copy of an A image (digits has a few exact duplicates)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    xb = ds.draw_b(32, g1)
    assert xb.shape == (32, 1, 8, 8) and torch.equal(xb, ds.draw_b(32, g2))
    assert float(xb.mean()) > float(ds.train.x.mean())  # inverted digits are mostly bright
    with pytest.raises(DataError, match="two domains"):
        load_dataset("digits").draw_b(2)
    t = load_dataset("domains:digits-transposed").container
    mean_a, mean_b = t.a.train.x.mean(0), t.b.train.x.mean(0)  # B's mean digit is A's, transposed
    assert (mean_b.transpose(-1, -2) - mean_a).abs().max() < 0.1 < (mean_b - mean_a).abs().max()


def test_digits_view_undoes_the_upsampling_closely_enough_for_the_digits_classifier():
    """digits-mnist's second judge reads upsampled digits through ``digits_view``: the round trip
    8x8 -> 28x28 -> 8x8 stays within a level or two, and deepgen-digits classifies the round-tripped
    test digits about as well as the originals."""
    from deepgen.data.domains import digits_view, upsample_digits
    from deepgen.metrics.features import accuracy, load_feature_network

    test = load_dataset("digits").test
    up = upsample_digits(test.storage, test.levels).float() / 255
    back = digits_view(up)
    assert back.shape == test.x.shape
    assert (back - test.x).abs().mean() < 1.5 / 16
    net = load_feature_network("deepgen-digits")
    direct, through = accuracy(net, test.x, test.y), accuracy(net, back, test.y)
    assert through > 0.9 and through > direct - 0.05, (direct, through)


def test_translation_metrics_add_a_domains_extra_judge():
    """A pair's ``judges`` add one label agreement per judge, with that judge's own ceiling: an exact
    inverse translator agrees as often as the judge is right on real examples."""
    from deepgen.evaluate.translation import translation_metrics

    class Invert(torch.nn.Module):
        device = torch.device("cpu")

        def translate(self, x, direction="a2b"):
            return 1 - x

    ds = load_dataset("domains:digits-inverted")
    ds.container.judges = {"a": ("deepgen-digits", lambda x: x), "b": ("deepgen-digits", lambda x: 1 - x)}
    m = translation_metrics(Invert(), ds, features="deepgen-digits", n=200)
    for d in ("a2b", "b2a"):
        j = m[f"label_agreement_{d}_deepgen-digits"]
        assert j["value"] == pytest.approx(j["classifier_accuracy_on_real_target"], abs=0.03) and j["value"] > 0.9
        # the floor, what no translation at all agrees: each judge reading the untranslated source
        # (A's digits through B's inverting view, B's inverted digits as A's) gets few right
        assert j["untranslated_source"] < 0.5, (d, j)
    # the main judge reads raw digits: untranslated A is as readable as real digits are
    assert m["label_agreement_a2b"]["untranslated_source"] > 0.9
