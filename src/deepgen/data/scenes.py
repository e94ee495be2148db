"""Scenes: posed images with pinhole cameras, camera rays, and a synthetic scene rendered exactly.

A radiance-field model (NeRF: Mildenhall et al., 2020, arXiv:2003.08934) learns a scene from posed
views. deepgen holds it as a :class:`Scene` and makes a :class:`~deepgen.data.base.Dataset` of kind
``"scene"`` whose rows are camera rays with their pixel colours:

* ``split.x`` (``storage``): rays, float32 ``(N, 6)`` = ``(origin xyz, unit direction xyz)``, world units;
* ``split.y``: float32 colours ``(N, 3)``, RGB in ``[0, 1]``.

So the engine batches rays exactly as it batches labelled examples; a scene model's ``loss(x, y)``
renders the rays ``x`` and compares them with ``y``. ``train`` holds the rays of the training views;
``val`` and ``test`` those of the held-out views (every ``holdout_every``-th view). The
:class:`Scene` itself (``Dataset.container``) renders whole views at any resolution for PSNR/SSIM.

Camera conventions (those of NeRF's synthetic scenes, i.e. OpenGL): a pose is camera-to-world
``(4, 4)``; the camera looks along its ``-z`` axis with ``+x`` right and ``+y`` up in the image. Pixel
``(i, j)`` (row, column) has its centre at ``(j + 0.5, i + 0.5)`` pixels; intrinsics ``(fx, fy, cx, cy)``
are in pixels and scale with the resolution. Ray directions are unit vectors, so distances along a
ray are world units.

The synthetic scene ``spheres`` is a few constant-density coloured spheres and a box in a white
background. Its volume-rendering integral (Max, 1995; NeRF eq. 1)

    C(r) = int_near^far T(t) sigma(t) c(t) dt + T(far) c_bg,     T(t) = exp(-int_near^t sigma(s) ds)

is evaluated *exactly*: along a ray the fields are piecewise constant between the entry and exit
distances of the shapes, and on each piece the integral has the closed form
``T_start (sigma c / sigma) (1 - exp(-sigma dt))`` (NeRF's quadrature, exact here because the pieces
are the true ones). :func:`quadrature_render` is the generic stratified quadrature for any field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from deepgen.data.base import DataInfo, Dataset, Split


def look_at(eye: torch.Tensor, target: torch.Tensor | None = None, up: torch.Tensor | None = None) -> torch.Tensor:
    """Camera-to-world pose ``(4, 4)`` float64 of a camera at ``eye`` looking at ``target`` (default origin)."""
    eye = torch.as_tensor(eye, dtype=torch.float64)
    target = torch.zeros(3, dtype=torch.float64) if target is None else torch.as_tensor(target, dtype=torch.float64)
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64) if up is None else torch.as_tensor(up, dtype=torch.float64)
    back = eye - target
    back = back / back.norm()  # the camera looks along -z, so +z points from the target to the eye
    right = torch.linalg.cross(up, back)
    right = right / right.norm()
    cam_up = torch.linalg.cross(back, right)
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, cam_up, back, eye
    return pose


def pose_on_sphere(azimuth: float, elevation: float, radius: float) -> torch.Tensor:
    """The camera-to-world pose ``(4, 4)`` at ``azimuth``, ``elevation`` (radians), ``radius``, facing the origin."""
    eye = radius * torch.tensor(
        [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
    )
    return look_at(eye)


def ring_poses(n: int, radius: float = 4.0, elevations_deg: tuple[float, ...] = (20.0, 35.0)) -> torch.Tensor:
    """``n`` cameras evenly spaced in azimuth on a ring around the origin, alternating elevations, ``(n, 4, 4)``."""
    return torch.stack(
        [
            pose_on_sphere(2 * math.pi * k / n, math.radians(elevations_deg[k % len(elevations_deg)]), radius)
            for k in range(n)
        ]
    )


def orbit_poses(n: int, azimuth_deg: float = 0.0, elevation_deg: float = 30.0, radius: float = 4.0) -> torch.Tensor:
    """``n`` cameras looking at the origin, evenly spaced in azimuth from ``azimuth_deg``, at one
    elevation and distance, ``(n, 4, 4)``: the novel views NeRF renders and is checked on."""
    el, az = math.radians(elevation_deg), math.radians(azimuth_deg)
    return torch.stack([pose_on_sphere(az + 2 * math.pi * k / n, el, radius) for k in range(n)])


def camera_rays(
    poses: torch.Tensor, height: int, width: int, camera: tuple[float, float, float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through every pixel centre of each pose.

    Args:
        poses: camera-to-world ``(N, 4, 4)`` (or ``(4, 4)``).
        height, width: image size in pixels.
        camera: intrinsics ``(fx, fy, cx, cy)`` in pixels at this resolution.

    Returns:
        origins, directions: float32 ``(N, H, W, 3)``; directions have unit length.
    """
    poses = poses.reshape(-1, 4, 4).double()
    fx, fy, cx, cy = camera
    i, j = torch.meshgrid(
        torch.arange(height, dtype=torch.float64) + 0.5, torch.arange(width, dtype=torch.float64) + 0.5, indexing="ij"
    )
    d_cam = torch.stack([(j - cx) / fx, -(i - cy) / fy, -torch.ones_like(i)], -1)  # OpenGL: +y up, looks along -z
    d = torch.einsum("nab,hwb->nhwa", poses[:, :3, :3], d_cam)
    d = d / d.norm(dim=-1, keepdim=True)
    o = poses[:, None, None, :3, 3].expand_as(d)
    return o.float().contiguous(), d.float().contiguous()


def scale_camera(camera: tuple[float, ...], native: tuple[int, int], size: tuple[int, int]) -> tuple[float, ...]:
    """Intrinsics ``(fx, fy, cx, cy)`` for images of ``size`` (H, W) given those for ``native`` (H, W)."""
    sy, sx = size[0] / native[0], size[1] / native[1]
    fx, fy, cx, cy = camera
    return (fx * sx, fy * sy, cx * sx, cy * sy)


# -- an analytic scene: constant-density shapes, rendered exactly ----------------------------------


@dataclass(frozen=True)
class Shape:
    """A constant-density coloured sphere (``size``: radius) or axis-aligned box (``size``: half-extents)."""

    kind: str
    centre: tuple[float, float, float]
    size: tuple[float, ...]
    density: float
    colour: tuple[float, float, float]

    def interval(self, o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Entry and exit distances ``(R,)`` of rays ``o + t d`` (unit ``d``); ``t_in >= t_out`` for a miss."""
        c = torch.tensor(self.centre, dtype=o.dtype)
        if self.kind == "sphere":
            oc = o - c
            b = (oc * d).sum(-1)
            disc = b * b - ((oc * oc).sum(-1) - self.size[0] ** 2)
            root = torch.sqrt(disc.clamp_min(0))
            miss = disc <= 0
            return torch.where(miss, torch.inf, -b - root), torch.where(miss, -torch.inf, -b + root)
        half = torch.tensor(self.size, dtype=o.dtype)
        inv = 1.0 / torch.where(d == 0, torch.full_like(d, 1e-30), d)  # slab method (Kay & Kajiya 1986)
        t1, t2 = (c - half - o) * inv, (c + half - o) * inv
        return torch.minimum(t1, t2).amax(-1), torch.maximum(t1, t2).amin(-1)


SPHERES_SCENE = (
    Shape("sphere", (0.0, 0.0, 0.0), (0.6,), 6.0, (0.9, 0.2, 0.15)),
    Shape("sphere", (0.7, 0.6, 0.1), (0.35,), 12.0, (0.15, 0.7, 0.25)),
    Shape("sphere", (-0.5, 0.7, -0.2), (0.3,), 20.0, (0.2, 0.3, 0.9)),
    Shape("box", (0.0, -0.8, -0.3), (0.25, 0.25, 0.25), 8.0, (0.95, 0.8, 0.2)),
)


def render_shapes(
    shapes: tuple[Shape, ...], o: torch.Tensor, d: torch.Tensor, near: float, far: float, background: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact volume rendering of constant-density shapes along rays ``(R, 3)``; see module docstring.

    Returns:
        colour ``(R, 3)`` and the transmittance to ``far``, ``T(far)`` ``(R,)``, both float64.
    """
    o, d = o.double().reshape(-1, 3), d.double().reshape(-1, 3)
    ins, outs = zip(*(s.interval(o, d) for s in shapes))
    t_in, t_out = torch.stack(ins, 1).clamp(near, far), torch.stack(outs, 1).clamp(near, far)  # (R, K)
    bounds = torch.full_like(t_in[:, :1], near), torch.full_like(t_in[:, :1], far)
    t = torch.cat([bounds[0], t_in, t_out, bounds[1]], 1).sort(1).values  # every breakpoint, (R, 2K + 2)
    mid, dt = 0.5 * (t[:, 1:] + t[:, :-1]), t[:, 1:] - t[:, :-1]
    inside = (t_in[:, None, :] < mid[..., None]) & (mid[..., None] < t_out[:, None, :])  # (R, pieces, K)
    dens = torch.tensor([s.density for s in shapes], dtype=torch.float64)
    cols = torch.tensor([s.colour for s in shapes], dtype=torch.float64)
    sigma = (inside * dens).sum(-1)  # (R, pieces)
    sigma_c = (inside * dens) @ cols  # (R, pieces, 3): overlapping shapes mix colour by density
    tau = sigma * dt
    t_start = torch.exp(-(torch.cumsum(tau, 1) - tau))
    mean_c = sigma_c / sigma.clamp_min(1e-300)[..., None]
    colour = (t_start * -torch.expm1(-tau))[..., None].mul(mean_c).sum(1)
    t_far = torch.exp(-tau.sum(1))
    return colour + t_far[:, None] * background, t_far


def shape_fields(shapes: tuple[Shape, ...], pts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact density ``(...)`` and colour ``(..., 3)`` of ``shapes`` at points ``(..., 3)`` (float64):
    densities add where shapes overlap, colours mix in proportion to them."""
    flat = pts.reshape(-1, 3).double()
    sig = torch.zeros(len(flat), dtype=torch.float64)
    sc = torch.zeros(len(flat), 3, dtype=torch.float64)
    for s in shapes:
        c = torch.tensor(s.centre, dtype=torch.float64)
        if s.kind == "sphere":
            inside = (flat - c).norm(dim=-1) < s.size[0]
        else:
            inside = ((flat - c).abs() < torch.tensor(s.size, dtype=torch.float64)).all(-1)
        sig += inside * s.density
        sc += (inside * s.density)[:, None] * torch.tensor(s.colour, dtype=torch.float64)
    rgb = sc / sig.clamp_min(1e-12)[:, None]
    return sig.reshape(pts.shape[:-1]), rgb.reshape(*pts.shape[:-1], 3)


def quadrature_render(
    sigma_fn: Callable[[torch.Tensor], torch.Tensor],
    rgb_fn: Callable[[torch.Tensor], torch.Tensor],
    o: torch.Tensor,
    d: torch.Tensor,
    near: float,
    far: float,
    n_samples: int = 128,
    background: float = 1.0,
) -> torch.Tensor:
    """NeRF's volume-rendering quadrature (Mildenhall et al. 2020, eq. 3) at bin midpoints.

    ``C = sum_i T_i (1 - exp(-sigma_i delta_i)) c_i + T_far c_bg`` with ``T_i = exp(-sum_{j<i} sigma_j delta_j)``,
    ``n_samples`` equal bins on ``[near, far]``. ``sigma_fn``: points ``(R, S, 3) -> (R, S)``; ``rgb_fn``:
    points -> ``(R, S, 3)``. Returns colours ``(R, 3)``. Error O(1/n_samples) at density discontinuities.
    """
    edges = torch.linspace(near, far, n_samples + 1, dtype=o.dtype)
    t = 0.5 * (edges[1:] + edges[:-1])
    pts = o[:, None, :] + t[None, :, None] * d[:, None, :]
    tau = sigma_fn(pts) * (far - near) / n_samples
    weights = torch.exp(-(torch.cumsum(tau, 1) - tau)) * -torch.expm1(-tau)
    return (weights[..., None] * rgb_fn(pts)).sum(1) + torch.exp(-tau.sum(1))[:, None] * background


# -- the container ---------------------------------------------------------------------------------


@dataclass
class Scene:
    """Posed views of one scene.

    Attributes:
        name: e.g. ``"scene:spheres"``.
        images: ``(N, 3, H, W)`` float32 RGB in [0, 1].
        poses: camera-to-world ``(N, 4, 4)`` float32 (OpenGL convention, see module docstring).
        camera: intrinsics ``(fx, fy, cx, cy)`` in pixels at ``(H, W)``.
        near, far: the ray interval that holds the scene (world units).
        test_views: indices of the held-out views; the rest are training views.
        render: optional ground truth ``(poses (M, 4, 4), (h, w)) -> images (M, 3, h, w)`` at any
            resolution (synthetic scenes have one).
    """

    name: str
    images: torch.Tensor
    poses: torch.Tensor
    camera: tuple[float, float, float, float]
    near: float
    far: float
    test_views: tuple[int, ...]
    render: Callable[[torch.Tensor, tuple[int, int]], torch.Tensor] | None = field(default=None, repr=False)
    source: str = ""

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])

    @property
    def train_views(self) -> tuple[int, ...]:
        return tuple(i for i in range(len(self.images)) if i not in set(self.test_views))

    @property
    def info(self) -> DataInfo:
        h, w = self.size
        return DataInfo(
            self.name, (3, h, w), kind="scene", grid=(h, w), camera=tuple(self.camera), bounds=(self.near, self.far)
        )

    def rays(self, poses: torch.Tensor, size: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Rays ``(M, h, w, 3)`` origins and unit directions for ``poses`` at ``size`` (default native)."""
        size = size or self.size
        return camera_rays(poses, size[0], size[1], scale_camera(self.camera, self.size, size))

    def split(self, views: tuple[int, ...]) -> Split:
        """Rays and colours of ``views``: ``x`` (V*H*W, 6) = (origin, direction), ``y`` (V*H*W, 3)."""
        idx = torch.tensor(views, dtype=torch.long)
        o, d = self.rays(self.poses[idx])
        colours = self.images[idx].permute(0, 2, 3, 1).reshape(-1, 3)
        return Split(torch.cat([o, d], -1).reshape(-1, 6), colours.contiguous())

    def to_dataset(self) -> Dataset:
        held = self.split(self.test_views)
        return Dataset(self.info, self.split(self.train_views), held, held, self.source, container=self)


def synthetic_scene(
    name: str = "spheres",
    size: int = 32,
    n_views: int = 30,
    holdout_every: int = 6,
    shapes: tuple[Shape, ...] = SPHERES_SCENE,
    radius: float = 4.0,
    fov_deg: float = 40.0,
) -> Scene:
    """A scene deepgen renders itself: ``shapes`` seen by ``n_views`` cameras on a ring (no download).

    Defaults: 30 views of 32 x 32 px, a 40 degree field of view, cameras 4 units from the origin,
    ``near, far = radius - 2, radius + 2``, white background; every 6th view is held out (25 / 5).
    """
    focal = 0.5 * size / math.tan(math.radians(fov_deg) / 2)
    camera = (focal, focal, size / 2, size / 2)
    near, far = radius - 2.0, radius + 2.0
    poses = ring_poses(n_views, radius)

    def render(p: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        o, d = camera_rays(p, hw[0], hw[1], scale_camera(camera, (size, size), hw))
        rgb, _ = render_shapes(shapes, o, d, near, far)
        return rgb.reshape(*o.shape[:3], 3).permute(0, 3, 1, 2).float().contiguous()

    images = render(poses, (size, size))
    test = tuple(range(0, n_views, holdout_every))
    return Scene(f"scene:{name}", images, poses.float(), camera, near, far, test, render, "deepgen synthetic scene")


#: Named scenes (``scene:NAME``) and what they are.
SCENES: dict[str, str] = {
    "spheres": "synthetic: 3 coloured spheres and a box, 30 ring views of 32 px (25 train / 5 held out), "
    "rendered exactly by deepgen (no download); rows are rays (origin, direction) -> RGB",
}
