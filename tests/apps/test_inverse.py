"""Inverse problems: the degradations' operators and projections, each restoration method on a model
that offers it (asked from capabilities), latent MAP against its closed form on a linear decoder,
the metrics, and the CLI end to end."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepgen.apps.inverse import Degradation, available_methods, restoration_metrics, restore
from deepgen.cli import main
from deepgen.data import DataInfo, load_dataset
from deepgen.errors import ConfigError
from deepgen.metrics.image_quality import psnr_from_mse
from deepgen.models.base import GenerativeModel
from deepgen.registry import get_model_class
from deepgen.train.run import build_model

IMG = (1, 8, 8)


@pytest.mark.parametrize("spec", ["inpaint:center", "inpaint:random:0.4", "downsample:2", "downsample:4"])
def test_projection_meets_the_observation_and_is_the_nearest_such_point(spec):
    g = torch.Generator().manual_seed(0)
    d = Degradation.parse(spec, IMG, generator=g)
    x, other = torch.rand(5, *IMG, generator=g), torch.rand(5, *IMG, generator=g)
    y = d.observe(x)
    p = d.project(other, y)
    assert torch.allclose(d.forward(p), y, atol=1e-6)  # A(P_y(v)) = y
    assert torch.allclose(d.project(p, y), p, atol=1e-6)  # idempotent
    assert torch.allclose(d.project(x, y), x, atol=1e-6)  # a consistent point stays
    for _ in range(5):  # nearest: no other consistent point is closer to `other`
        cand = d.project(torch.rand(5, *IMG, generator=g), y)
        assert ((p - other).pow(2).sum() <= (cand - other).pow(2).sum() + 1e-6).all()


def test_noisy_observation_has_the_asked_std_and_the_data_levels():
    g = torch.Generator().manual_seed(0)
    x = torch.full((4000, *IMG), 0.5)
    y = Degradation.parse("denoise:0.1", IMG).observe(x, g)
    assert (y - x).std().item() == pytest.approx(0.1, rel=0.03)
    y17 = Degradation.parse("denoise:0.1", IMG, levels=17).observe(x[:10], g)
    assert torch.equal(y17 * 16, (y17 * 16).round()) and y17.min() >= 0 and y17.max() <= 1


@pytest.mark.parametrize(
    "spec,match",
    [("blur:2", "unknown degradation"), ("downsample:3", "divide"), ("denoise:-1", "> 0"), ("inpaint", "mask")],
)
def test_bad_degradations_say_what_is_valid(spec, match):
    with pytest.raises(ConfigError, match=match):
        Degradation.parse(spec, IMG)


class LinearDecoder(GenerativeModel):
    """decode(z) = W z, encode(x) = 0: MAP over z has a closed form to check against."""

    family = "baseline"

    def __init__(self, info, w):
        super().__init__(info)
        self.w = nn.Parameter(w)

    def encode(self, x, y=None):
        return torch.zeros(len(x), self.w.shape[1])

    def decode(self, z, y=None):
        return (z @ self.w.T).view(len(z), *self.info.shape)


def test_latent_map_reaches_the_closed_form_of_a_linear_gaussian_problem():
    torch.manual_seed(0)
    info = DataInfo("toy", IMG)
    w = torch.randn(64, 6) * 0.3
    model = LinearDecoder(info, w)
    assert "latent" in available_methods(model, Degradation.parse("denoise:0.2", IMG))
    x = torch.rand(3, *IMG)
    for spec in ("denoise:0.2", "inpaint:center", "downsample:2"):
        d = Degradation.parse(spec, IMG)
        y = d.observe(x, torch.Generator().manual_seed(1))
        s2 = 0.2**2 if d.kind == "denoise" else 0.05**2
        a = torch.stack([d.forward(e.view(1, *IMG)).flatten() for e in torch.eye(64)], 1)  # A as a matrix
        aw = a @ w
        z = torch.linalg.solve(aw.T @ aw / s2 + torch.eye(6), aw.T @ y.flatten(1).T / s2).T
        want = d.project(model.decode(z), y)
        got = restore(model, y, d, "latent", mean=torch.zeros(IMG), steps=1500, lr=0.05)
        assert torch.allclose(got, want.detach(), atol=2e-3), spec


def test_sampling_methods_keep_what_was_observed():
    ds = load_dataset("digits")
    x = ds.test.x[:6]
    mean = ds.train.x.float().mean(0)
    d = Degradation.parse("inpaint:bottom-half", IMG, levels=17)
    y = d.observe(x)
    for name, method in (("made", "complete"), ("ddpm", "edit"), ("ddpm", "guided")):
        model = build_model(name, ds.info, seed=0, options=get_model_class(name).test_options).eval()
        assert method in available_methods(model, d)
        opts = {"steps": 5} if name == "ddpm" else {}
        r = restore(model, y, d, method, mean=mean, generator=torch.Generator().manual_seed(0), options=opts)
        assert torch.equal(r[:, :, :4], x[:, :, :4]) and torch.equal(r * 16, (r * 16).round())
    with pytest.raises(ConfigError, match="needs the capability complete"):
        restore(model, y, d, "complete", mean=mean)
    base = restore(model, y, d, "observed", mean=mean)
    assert torch.equal(base[:, :, :4], x[:, :, :4]) and torch.allclose(base[:, :, 4:], mean.expand(6, *IMG)[:, :, 4:])


def test_metrics_psnr_and_the_unobserved_region():
    d = Degradation.parse("inpaint:bottom-half", IMG)
    x = torch.zeros(4, *IMG)
    r = x.clone()
    r[:, :, 4:] = 0.1  # error only where nothing was observed
    m = restoration_metrics(r, x, d)
    assert m["mse_unobserved"]["value"] == pytest.approx(0.01) and m["mse_all"]["value"] == pytest.approx(0.005)
    assert m["psnr_unobserved"]["value"] == pytest.approx(20.0) and psnr_from_mse(
        torch.tensor(1e-3)
    ).item() == pytest.approx(30)


def test_cli_restores_with_every_offered_method(tmp_path):
    run = str(tmp_path / "vae")
    assert main(["train", "vae", "--data", "digits", "--steps", "5", "--no-progress", "--out", run,
                 "-o", "latent_dim=4", "-o", "hidden=16"]) == 0  # fmt: skip
    out = tmp_path / "r"
    assert main(["restore", run, "--task", "inpaint:center", "-n", "12", "--steps", "5", "--out", str(out)]) == 0
    res = json.loads((out / "restore.json").read_text())
    assert res["rows"] == ["original", "observation", "observed", "latent"]
    assert res["methods"]["latent"]["n"] == 12 and "label_agreement" in res["methods"]["latent"]
    assert (out / "restore.png").stat().st_size > 0
    assert main(["restore", run, "--task", "inpaint:center", "--method", "edit", "--out", str(out)]) == 2


def test_guided_restoration_meets_block_averages_and_starts_denoising_at_the_noise_level():
    ds = load_dataset("digits")
    x, mean = ds.test.x[:8], ds.train.x.float().mean(0)
    model = build_model("ddpm", ds.info, seed=0, options=get_model_class("ddpm").test_options).eval()
    d = Degradation.parse("downsample:2", IMG, levels=17)
    y = d.observe(x)
    r = restore(model, y, d, "guided", mean=mean, generator=torch.Generator().manual_seed(0), options={"steps": 5})
    # exact in the diffusion's space; snapping to the 17 levels moves a block average by <= 1/32, and
    # clamping to [0, 1] more: check the blocks that touch neither bound
    interior = F.avg_pool2d(((r > 0) & (r < 1)).float(), 2) == 1
    assert interior.sum() >= 5  # an untrained network saturates many pixels
    assert (d.forward(r) - y)[interior].abs().max() <= 1 / 32 + 1e-6
    calls = []
    model.restore = lambda ref, project, **kw: calls.append((ref, project, kw)) or ref  # what the app asks for
    n = Degradation.parse("denoise:0.2", IMG, levels=17)
    yn = n.observe(x, torch.Generator().manual_seed(0))
    restore(model, yn, n, "guided", mean=mean)
    assert torch.equal(calls[0][0], yn) and calls[0][1] is None and calls[0][2]["noise"] == 0.2
    fresh = build_model("ddpm", ds.info, seed=0, options=get_model_class("ddpm").test_options).eval()
    with pytest.raises(ConfigError, match="ancestral or ddim"):
        restore(fresh, y, d, "guided", mean=mean, options={"sampler": "heun", "steps": 3})


def test_guided_inpainting_with_resampling_keeps_the_observation_and_needs_the_ancestral_sampler(digits):
    model = build_model("ddpm", digits.info, seed=0, options=get_model_class("ddpm").test_options).eval()
    x, mean = digits.test.x[:4], digits.train.x.float().mean(0)
    d = Degradation.parse("inpaint:bottom-half", IMG, levels=17)
    y = d.observe(x)
    g = torch.Generator().manual_seed(0)
    r = restore(model, y, d, "guided", mean=mean, generator=g, resample=3, options={"sampler": "ancestral"})
    assert torch.equal(r[:, :, :4], x[:, :, :4])
    with pytest.raises(ConfigError, match="sampler=ancestral"):
        restore(model, y, d, "guided", mean=mean, resample=3, options={"sampler": "ddim", "steps": 3})
