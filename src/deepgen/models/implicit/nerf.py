"""NeRF: a scene as a neural radiance field rendered by volume rendering (Mildenhall et al., 2020,
arXiv:2003.08934).

An MLP maps a point x and a view direction d, each through the positional encoding
gamma(p) = (p, sin(2^k pi p), cos(2^k pi p))_{k < L}, to a density sigma(x) >= 0 (from x only; a
softplus, where the paper's ReLU could leave a small network with zero density, hence zero
gradient, on every ray) and a colour c(x, d) in [0, 1]. A ray r(t) = o + t d is rendered by the
quadrature of the volume-rendering integral (the paper's eq. 3), for sample distances
t_1 < ... < t_N on [near, far]:

    C(r) = sum_i T_i (1 - exp(-sigma_i delta_i)) c_i + T_{N+1} c_bg,   T_i = exp(-sum_{j<i} sigma_j delta_j),

with delta_i = t_{i+1} - t_i (the last bin ends at ``far``) and the scene's white background c_bg
(:func:`composite`). Sampling is hierarchical, as in the paper: a *coarse* network is evaluated at
``coarse`` stratified samples (one uniform draw in each of equal bins; bin midpoints in evaluation),
its weights w_i = T_i (1 - exp(-sigma_i delta_i)) define a piecewise-constant pdf along the ray, and
``fine`` more samples drawn from it by inverse transform join the coarse ones for the *fine*
network. Both are trained on the squared error to the pixel colours; the fine rendering is the
model's prediction. ``fine=0`` renders with the coarse network alone.

The model trains on data of kind ``scene`` (rows: rays ``(o, d)``, targets: colours) and predicts
colours for any ray (``deepgen eval``: PSNR and SSIM on held-out views). ``sample`` renders novel
views: ``n`` cameras evenly spaced in azimuth around the scene's centre, at sampling options
``elevation`` (degrees), ``radius`` and ``size`` (pixels), with the data's intrinsics rescaled. A
radiance field has no density over examples: its density kind is ``none``.

Defaults are smaller than the paper's (8 layers of 256, 64 + 128 samples) so that a scene trains on
a CPU: 4 layers of 128, 32 + 64 samples; ``-o layers=8 -o hidden=256 -o coarse=64 -o fine=128`` is
the paper's network (its skip connection feeds gamma(x) again to layer 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from deepgen.config import check_positive
from deepgen.data.scenes import camera_rays, orbit_poses, scale_camera
from deepgen.errors import ConfigError
from deepgen.models.base import GenerativeModel
from deepgen.registry import register


def positional_encoding(p: torch.Tensor, freqs: int) -> torch.Tensor:
    """gamma(p) = (p, sin(2^k pi p), cos(2^k pi p) for k < freqs), (..., 3 (1 + 2 freqs))."""
    scales = (2.0 ** torch.arange(freqs, device=p.device, dtype=p.dtype)) * math.pi
    xs = p[..., None, :] * scales[:, None]  # (..., F, 3)
    return torch.cat([p, torch.sin(xs).flatten(-2), torch.cos(xs).flatten(-2)], -1)


def composite(sigma: torch.Tensor, rgb: torch.Tensor, t: torch.Tensor, far: float, background: float = 1.0):
    """Volume-rendering quadrature along rays: densities ``sigma`` (R, S), colours ``rgb`` (R, S, 3) at
    sorted distances ``t`` (R, S), the last bin ending at ``far``. Returns (colour (R, 3), weights (R, S))."""
    delta = torch.cat([t[:, 1:] - t[:, :-1], (far - t[:, -1:]).clamp_min(0)], 1)
    tau = sigma * delta
    trans = torch.exp(-(torch.cumsum(tau, 1) - tau))  # T_i: transmittance up to sample i
    w = trans * -torch.expm1(-tau)
    t_end = torch.exp(-tau.sum(1, keepdim=True))
    return (w[..., None] * rgb).sum(1) + t_end * background, w


def sample_pdf(edges: torch.Tensor, weights: torch.Tensor, n: int, deterministic: bool, generator=None) -> torch.Tensor:
    """``n`` distances per ray by inverse transform from the piecewise-constant pdf with bin ``edges``
    (R, S + 1) and bin ``weights`` (R, S); evenly spaced quantiles when ``deterministic``."""
    w = weights + 1e-5  # every bin keeps a little mass (the paper's fix for rays with no mass)
    cdf = torch.cumsum(w / w.sum(1, keepdim=True), 1)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf], 1)  # (R, S + 1)
    if deterministic:
        u = torch.linspace(0.5 / n, 1 - 0.5 / n, n, device=edges.device, dtype=edges.dtype).expand(len(edges), n)
    else:
        u = torch.rand(len(edges), n, device=edges.device, dtype=edges.dtype, generator=generator)
    u = u.contiguous()
    idx = torch.searchsorted(cdf, u, right=True).clamp(1, cdf.shape[1] - 1)
    c0, c1 = cdf.gather(1, idx - 1), cdf.gather(1, idx)
    e0, e1 = edges.gather(1, idx - 1), edges.gather(1, idx)
    frac = (u - c0) / (c1 - c0).clamp_min(1e-8)
    return e0 + frac * (e1 - e0)


class RadianceField(nn.Module):
    """(points (..., 3), directions (..., 3)) -> (sigma (...), rgb (..., 3))."""

    def __init__(self, hidden=128, layers=4, pos_freqs=10, dir_freqs=4, skips=(4,)):
        super().__init__()
        self.pos_freqs, self.dir_freqs = pos_freqs, dir_freqs
        px, pd = 3 * (1 + 2 * pos_freqs), 3 * (1 + 2 * dir_freqs)
        self.skips = tuple(s for s in skips if 0 < s < layers)
        self.trunk = nn.ModuleList(
            nn.Linear(px if i == 0 else hidden + (px if i in self.skips else 0), hidden) for i in range(layers)
        )
        self.sigma = nn.Linear(hidden, 1)
        self.feature = nn.Linear(hidden, hidden)
        self.rgb = nn.Sequential(nn.Linear(hidden + pd, hidden // 2), nn.ReLU(), nn.Linear(hidden // 2, 3))

    def forward(self, x, d):
        gx = positional_encoding(x, self.pos_freqs)
        h = gx
        for i, lin in enumerate(self.trunk):
            if i in self.skips:
                h = torch.cat([h, gx], -1)
            h = torch.relu(lin(h))
        sigma = nn.functional.softplus(self.sigma(h)).squeeze(-1)  # the paper's ReLU can start dead everywhere
        gd = positional_encoding(d, self.dir_freqs)
        rgb = torch.sigmoid(self.rgb(torch.cat([self.feature(h), gd], -1)))
        return sigma, rgb


@dataclass(frozen=True)
class NeRFConfig:
    """Options of :class:`NeRF`: the MLP's ``hidden`` width and ``layers`` (skip connection into layer
    ``skip``; 0: none), encoding frequencies ``pos_freqs`` (points) and ``dir_freqs`` (directions),
    ``coarse`` stratified samples and ``fine`` importance samples per ray (0: coarse only)."""

    hidden: int = 128
    layers: int = 4
    skip: int = 4
    pos_freqs: int = 10
    dir_freqs: int = 4
    coarse: int = 32
    fine: int = 64

    def __post_init__(self):
        check_positive(self, "hidden", "layers", "coarse")
        if self.fine < 0 or self.skip < 0 or self.pos_freqs < 0 or self.dir_freqs < 0:
            raise ConfigError("NeRFConfig: fine, skip, pos_freqs and dir_freqs must be >= 0")


@dataclass(frozen=True)
class NeRFSampleConfig:
    """Novel views: ``n`` cameras evenly spaced in azimuth (starting at ``azimuth`` degrees), at
    ``elevation`` degrees and distance ``radius`` from the origin, ``size`` pixels square (None: the data's)."""

    azimuth: float = 0.0
    elevation: float = 30.0
    radius: float = 4.0
    size: int | None = None


@register("nerf")
class NeRF(GenerativeModel):
    """Neural radiance field with hierarchical volume rendering, trained from posed images."""

    family = "implicit"
    Config = NeRFConfig
    SampleConfig = NeRFSampleConfig
    data_kinds = ("scene",)
    density_summary = "none (a radiance field renders views; it is not a distribution over examples)"
    loss_units = "squared error (coarse + fine)"
    test_options = {"hidden": 16, "layers": 2, "pos_freqs": 3, "dir_freqs": 2, "coarse": 8, "fine": 8}
    train_defaults = {"lr": 5e-4}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        net = dict(
            hidden=cfg.hidden, layers=cfg.layers, pos_freqs=cfg.pos_freqs, dir_freqs=cfg.dir_freqs, skips=(cfg.skip,)
        )
        self.coarse_net = RadianceField(**net)
        self.fine_net = RadianceField(**net) if cfg.fine else None
        self.near, self.far = (float(b) for b in info.bounds)

    def why_no_density(self) -> str:
        return (
            "a NeRF is a radiance field of one scene, not a distribution; evaluate it with PSNR/SSIM on held-out views"
        )

    def _points(self, o, d, t):
        return o[:, None, :] + t[..., None] * d[:, None, :]

    def render(self, rays: torch.Tensor, generator=None) -> dict[str, torch.Tensor]:
        """Colours of rays (R, 6): ``{"coarse": (R, 3), "fine": (R, 3) (when fine > 0)}``."""
        cfg = self.config
        o, d = rays[:, :3], rays[:, 3:6]
        r = len(rays)
        edges = torch.linspace(self.near, self.far, cfg.coarse + 1, device=rays.device, dtype=rays.dtype)
        edges = edges.expand(r, -1)
        if self.training:  # stratified: one uniform draw per bin
            u = torch.rand(r, cfg.coarse, device=rays.device, dtype=rays.dtype, generator=generator)
        else:
            u = torch.full((r, cfg.coarse), 0.5, device=rays.device, dtype=rays.dtype)
        t = edges[:, :-1] + u * (edges[:, 1:] - edges[:, :-1])
        dirs = d[:, None, :].expand(-1, cfg.coarse, -1)
        sigma, rgb = self.coarse_net(self._points(o, d, t), dirs)
        colour, w = composite(sigma, rgb, t, self.far)
        out = {"coarse": colour}
        if self.fine_net is not None:
            tf = sample_pdf(edges, w.detach(), cfg.fine, deterministic=not self.training, generator=generator)
            t_all = torch.cat([t, tf.detach()], 1).sort(1).values
            dirs = d[:, None, :].expand(-1, t_all.shape[1], -1)
            sigma, rgb = self.fine_net(self._points(o, d, t_all), dirs)
            out["fine"], _ = composite(sigma, rgb, t_all, self.far)
        return out

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Colours (R, 3) of rays ``x`` (R, 6): the fine rendering (the coarse one without ``fine``)."""
        out = self.render(x)
        return out.get("fine", out["coarse"])

    def loss(self, x, y=None):
        if y is None:
            raise ConfigError("nerf renders rays and compares them with their pixel colours: pass y")
        out = self.render(x)
        mse = {k: (v - y).pow(2).mean() for k, v in out.items()}
        best = mse.get("fine", mse["coarse"])
        return {"loss": sum(mse.values()), "psnr_db": -10 * torch.log10(best.detach().clamp_min(1e-12))}

    @torch.no_grad()
    def render_view(self, pose: torch.Tensor, size: int, batch_size: int = 4096) -> torch.Tensor:
        """An image (3, size, size) from camera-to-world ``pose`` (4, 4)."""
        h, w = self.info.grid
        cam = scale_camera(tuple(self.info.camera), (h, w), (size, size))
        o, d = camera_rays(pose, size, size, cam)
        rays = torch.cat([o, d], -1).reshape(-1, 6).to(self.device)
        cols = torch.cat([self.predict(rays[i : i + batch_size]) for i in range(0, len(rays), batch_size)])
        return cols.reshape(size, size, 3).permute(2, 0, 1).clamp(0, 1)

    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        size = options.size or self.info.grid[0]
        poses = orbit_poses(n, options.azimuth, options.elevation, options.radius)
        return torch.stack([self.render_view(p, size) for p in poses])
